"""The orphan pool (node/orphans.py): txs from peers whose parents we lack."""

from chain.tx import Tx, TxIn, TxOut
from node.orphans import MAX_ORPHAN_TXS, ORPHAN_TX_SECONDS, TxOrphanage

from .helpers import COIN, Harness, owner, pub, spend
from .test_mempool import coinbase_coin, out, pay


def orphan(n: int) -> Tx:
    """An unsigned tx spending output ``n`` of an unknown parent."""
    return Tx(1, (TxIn(b"\x77" * 32, n, pub("alice"), bytes(64)),),
              (TxOut(1 * COIN, owner("bob")),), 0)


def test_orphan_pool_is_bounded_to_100_oldest_out_first():
    pool = TxOrphanage()
    assert MAX_ORPHAN_TXS == 100
    txs = [orphan(n) for n in range(101)]
    for n, tx in enumerate(txs):
        pool.add(tx, f"127.0.0.1:{n}", 1000.0)
    assert len(pool) == 100
    assert txs[0].txid not in pool and txs[1].txid in pool
    assert list(pool.orphans)[-1] == txs[100].txid


def test_orphans_expire_after_20_minutes():
    pool = TxOrphanage()
    assert ORPHAN_TX_SECONDS == 1200
    pool.add(orphan(0), "peer-a", 1000.0)
    pool.add(orphan(1), "peer-b", 2200.0)
    assert list(pool.orphans) == [orphan(0).txid, orphan(1).txid]
    pool.add(orphan(2), "peer-c", 2201.0)
    assert list(pool.orphans) == [orphan(1).txid, orphan(2).txid]


def test_take_children_removes_and_returns_with_source():
    h = Harness()
    h.mine_empty(20)
    parent = spend([coinbase_coin(h, 0)], "alice", [("bob", 20 * COIN), ("carol", 30 * COIN - 1000)])
    kid_bob = pay(out(parent, 0), "dave", fee=1000, signer="bob")
    kid_carol = pay(out(parent, 1), "dave", fee=1000, signer="carol")
    stranger = orphan(0)
    pool = TxOrphanage()
    pool.add(kid_bob, "10.0.0.1:1", 1000.0)
    pool.add(stranger, "10.0.0.2:2", 1000.0)
    pool.add(kid_carol, "10.0.0.3:3", 1000.0)
    ready = pool.take_children(parent.txid)
    assert [(t.txid, src) for t, src in ready] == [(kid_bob.txid, "10.0.0.1:1"),
                                                   (kid_carol.txid, "10.0.0.3:3")]
    assert list(pool.orphans) == [stranger.txid]
    assert pool.take_children(parent.txid) == []
