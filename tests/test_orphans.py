"""The orphan pool (node/orphans.py): txs from peers whose parents we lack.
Its life in a running node is shown in tests/test_simulator.py."""

from chain.tx import Tx, TxIn, TxOut
from node.orphans import (MAX_ORPHAN_BYTES, MAX_ORPHAN_TX_BYTES, MAX_ORPHAN_TXS,
                          ORPHAN_TX_SECONDS, TxOrphanage)

from .helpers import COIN, owner, pub


BOB = owner("bob")


def orphan(n: int, outputs: int = 1) -> Tx:
    """An unsigned tx spending output ``n`` of an unknown parent."""
    return Tx(1, (TxIn(b"\x77" * 32, n, pub("alice"), bytes(64)),),
              tuple(TxOut(1 * COIN, BOB) for _ in range(outputs)), 0)


def test_at_most_100_the_hungriest_peer_loses_its_oldest_first():
    pool = TxOrphanage()
    assert MAX_ORPHAN_TXS == 100
    pool.add(orphan(1000), 7, "quiet:1", 0.0)  # another peer's orphan survives the flood
    txs = [orphan(n) for n in range(100)]
    for tx in txs:
        assert pool.add(tx, 1, "flood:1", 0.0) or tx is txs[-1]
    assert len(pool) == 100
    assert orphan(1000).txid in pool
    assert txs[0].txid not in pool and txs[1].txid in pool and txs[99].txid in pool


def test_bounded_in_bytes_and_a_tx_too_big_is_not_kept():
    pool = TxOrphanage()
    too_big = orphan(0, outputs=MAX_ORPHAN_TX_BYTES // 28)
    assert too_big.size > MAX_ORPHAN_TX_BYTES
    assert not pool.add(too_big, 1, "a:1", 0.0) and len(pool) == 0
    big = [orphan(n, outputs=3_000) for n in range(1, 20)]
    for tx in big:
        pool.add(tx, 1, "a:1", 0.0)
    assert MAX_ORPHAN_BYTES - big[0].size < pool.bytes <= MAX_ORPHAN_BYTES
    assert pool.bytes == sum(pool.orphans[t].tx.size for t in pool.orphans)
    assert big[-1].txid in pool and big[0].txid not in pool


def test_orphans_expire_after_20_minutes():
    pool = TxOrphanage()
    assert ORPHAN_TX_SECONDS == 1200
    pool.add(orphan(0), 1, "a:1", 1000.0)
    pool.add(orphan(1), 2, "b:2", 2199.0)
    pool.expire(2199.0)
    assert list(pool.orphans) == [orphan(0).txid, orphan(1).txid]
    pool.expire(2200.0)
    assert list(pool.orphans) == [orphan(1).txid]


def test_children_stay_until_removed_and_a_peer_takes_its_orphans_with_it():
    pool = TxOrphanage()
    a, b, c = orphan(0), orphan(1), orphan(2)
    pool.add(a, 1, "a:1", 0.0)
    pool.add(b, 2, "b:2", 0.0)
    pool.add(c, 1, "a:1", 0.0)
    parent = b"\x77" * 32
    assert [o.tx for o in pool.children_of(parent)] == [a, b, c]
    assert [o.tx for o in pool.children_of(parent)] == [a, b, c]  # still there
    pool.remove_peer(1)
    assert list(pool.orphans) == [b.txid] and pool.bytes == b.size
    pool.remove(b.txid)
    assert pool.by_parent == {} and pool.by_peer == {} and pool.bytes == 0


def test_a_block_takes_the_orphans_it_confirms_or_conflicts_with():
    pool = TxOrphanage()
    a, b = orphan(0), orphan(1)
    rival = Tx(1, a.inputs, (TxOut(2 * COIN, owner("carol")),), 0)
    pool.add(a, 1, "a:1", 0.0)
    pool.add(b, 1, "a:1", 0.0)
    pool.add(orphan(2), 1, "a:1", 0.0)
    pool.remove_for_block([rival, b])
    assert list(pool.orphans) == [orphan(2).txid]
