"""The mempool (node/mempool.py) on a hand-mined regtest chain: every policy
code of PROTOCOL.md section 5, the consensus codes through the mempool path
(checked as if going into block tip+1), chains of unconfirmed txs, following
the chain through blocks and reorgs, and block templates (orphan txs:
tests/test_orphans.py).

The chain of every test: ``Harness`` with 20 empty blocks paying alice, so
alice's coinbase coins of heights 0..11 are mature for block 21 and those of
12..20 are not.
"""

import math

import pytest

from chain.coins import Coin
from chain.errors import RuleError
from chain.params import DEVNET
from chain.tx import OutPoint, Tx, TxIn, TxOut, coinbase_tx
from node.mempool import EXPIRY_SECONDS, MAX_CHAIN, Mempool

from .helpers import COIN, Harness, owner, pub, spend

SIZE_1_1 = 171   # bytes of a tx with one input and one output
SIZE_1_2 = 199   # one input, two outputs
TIP = 20


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.mine_empty(TIP)
    return harness


def pool_of(h: Harness, **kwargs) -> Mempool:
    return Mempool(h.chain, min_fee_rate=1, **kwargs)


def coinbase_coin(h: Harness, height: int) -> tuple[OutPoint, Coin]:
    """Alice's coinbase coin made at ``height``."""
    [found] = [(op, c) for op, c in h.coins_of("alice") if c.height == height and c.coinbase]
    return found


def out(tx: Tx, index: int, height: int | None = None) -> tuple[OutPoint, Coin]:
    """Output ``index`` of ``tx`` as a coin (``height`` only matters to maturity)."""
    o = tx.outputs[index]
    return OutPoint(tx.txid, index), Coin(o.amount, o.owner, height or 0, tx.is_coinbase)


def pay(coin, to="bob", fee=SIZE_1_1, signer="alice") -> Tx:
    """One input, one output of the coin's amount minus ``fee``."""
    return spend([coin], signer, [(to, coin[1].amount - fee)])


def code_of(pool: Mempool, tx: Tx) -> RuleError:
    with pytest.raises(RuleError) as info:
        pool.accept(tx)
    return info.value


def snapshot(pool: Mempool):
    return (dict(pool.entries), dict(pool.spends), pool.bytes,
            {t: (set(e.parents), set(e.children)) for t, e in pool.entries.items()})


# -- acceptance and the fee ------------------------------------------------------------

def test_accept_returns_fee_and_tracks_bytes_spends_and_coins(h):
    pool = pool_of(h)
    coin = coinbase_coin(h, 0)
    tx = spend([coin], "alice", [("bob", 10 * COIN), ("alice", 40 * COIN - 5000)])
    assert tx.size == SIZE_1_2
    assert pool.accept(tx) == (5000, [])
    assert tx.txid in pool and len(pool) == 1 and pool.get(tx.txid) == tx
    assert pool.bytes == SIZE_1_2
    assert pool.spends == {coin[0]: tx.txid}
    # The next block's view: the spent coin is gone, the new outputs exist at tip+1.
    assert pool.get_coin(coin[0]) is None
    assert pool.get_coin(OutPoint(tx.txid, 0)) == Coin(10 * COIN, owner("bob"), TIP + 1, False)
    assert pool.get_coin(OutPoint(tx.txid, 2)) is None
    entry = pool.entries[tx.txid]
    assert (entry.fee, entry.size, entry.parents, entry.children) == (5000, SIZE_1_2, set(), set())


def test_min_relay_fee_is_one_unit_per_byte(h):
    pool = pool_of(h)
    low = pay(coinbase_coin(h, 0), fee=SIZE_1_1 - 1)
    error = code_of(pool, low)
    assert error.code == "min-relay-fee-not-met" and error.kind == "policy"
    assert error.message == ("fee 0.00000170 TOY < 1 units/byte x 171 bytes = 0.00000171 TOY")
    assert len(pool) == 0 and pool.bytes == 0
    exact = pay(coinbase_coin(h, 0), fee=SIZE_1_1)
    assert pool.accept(exact) == (SIZE_1_1, [])


def test_min_fee_rate_is_configurable(h):
    pool = Mempool(h.chain, min_fee_rate=3)
    error = code_of(pool, pay(coinbase_coin(h, 0), fee=3 * SIZE_1_1 - 1))
    assert error.code == "min-relay-fee-not-met"
    assert error.message == "fee 0.00000512 TOY < 3 units/byte x 171 bytes = 0.00000513 TOY"
    assert pool.accept(pay(coinbase_coin(h, 0), fee=3 * SIZE_1_1))[0] == 513


def test_txn_already_in_mempool(h):
    pool = pool_of(h)
    tx = pay(coinbase_coin(h, 0))
    pool.accept(tx)
    error = code_of(pool, tx)
    assert error.code == "txn-already-in-mempool" and error.kind == "policy"
    assert error.message == f"tx {tx.txid.hex()} is already in the mempool"
    assert len(pool) == 1 and pool.bytes == SIZE_1_1


def test_txn_already_known_for_a_confirmed_tx(h):
    pool = pool_of(h)
    tx = pay(coinbase_coin(h, 0))
    assert h.mine([tx], fees=SIZE_1_1).status == "connected"
    error = code_of(pool, tx)
    assert error.code == "txn-already-known" and error.kind == "policy"
    assert error.message == f"tx {tx.txid.hex()} is already confirmed"
    assert len(pool) == 0


def test_txn_mempool_conflict_first_seen_wins_whatever_the_fee(h):
    pool = pool_of(h)
    coin = coinbase_coin(h, 0)
    first = pay(coin, "bob", fee=SIZE_1_1)
    rival = pay(coin, "carol", fee=1000 * SIZE_1_1)
    pool.accept(first)
    error = code_of(pool, rival)
    assert error.code == "txn-mempool-conflict" and error.kind == "policy"
    assert error.message == (f"input 0 spends {coin[0]}, already spent by mempool tx "
                             f"{first.txid.hex()} (first seen wins)")
    assert list(pool.entries) == [first.txid]
    assert pool.spends == {coin[0]: first.txid}


def test_conflict_is_reported_for_the_input_that_conflicts(h):
    pool = pool_of(h)
    a, b = coinbase_coin(h, 0), coinbase_coin(h, 1)
    pool.accept(pay(b))
    both = spend([a, b], "alice", [("carol", 99 * COIN)])
    error = code_of(pool, both)
    assert error.code == "txn-mempool-conflict"
    assert error.message.startswith(f"input 1 spends {b[0]}, already spent by mempool tx")


def test_coinbase_refused_outside_a_block(h):
    pool = pool_of(h)
    error = code_of(pool, coinbase_tx(TIP + 1, [TxOut(50 * COIN, owner("mallory"))]))
    assert error.code == "coinbase" and error.kind == "consensus"
    assert error.message == ("a transaction with no inputs (a coinbase) is only valid as the "
                             "first transaction of a block")
    no_inputs = Tx(1, (), (TxOut(1 * COIN, owner("mallory")),), 0)
    assert code_of(pool, no_inputs).code == "coinbase"
    assert len(pool) == 0


# -- consensus codes through the mempool ------------------------------------------------------

def test_overspend_bad_txns_in_belowout(h):
    pool = pool_of(h)
    funding = spend([coinbase_coin(h, 0)], "alice", [("bob", 10 * COIN), ("alice", 40 * COIN - 1000)])
    assert h.mine([funding], fees=1000).status == "connected"
    ten = out(funding, 0, TIP + 1)
    overspend = spend([ten], "bob", [("carol", 15 * COIN)])
    error = code_of(pool, overspend)
    assert error.code == "bad-txns-in-belowout" and error.kind == "consensus"
    assert error.message == "inputs 10.00000000 TOY < outputs 15.00000000 TOY"
    assert str(error) == "bad-txns-in-belowout: inputs 10.00000000 TOY < outputs 15.00000000 TOY"
    assert len(pool) == 0


def test_overspend_of_a_mempool_output(h):
    pool = pool_of(h)
    parent = spend([coinbase_coin(h, 0)], "alice", [("bob", 10 * COIN), ("alice", 40 * COIN - 1000)])
    pool.accept(parent)
    error = code_of(pool, spend([out(parent, 0)], "bob", [("carol", 15 * COIN)]))
    assert (error.code, error.message) == ("bad-txns-in-belowout",
                                           "inputs 10.00000000 TOY < outputs 15.00000000 TOY")


def test_missing_or_spent_inputs(h):
    pool = pool_of(h)
    ghost = (OutPoint(bytes(range(32)), 3), Coin(50 * COIN, owner("alice"), 0, False))
    error = code_of(pool, pay(ghost))
    assert error.code == "bad-txns-inputs-missingorspent" and error.kind == "consensus"
    assert error.message == (f"input 0 spends {bytes(range(32)).hex()}:3, which does not exist "
                             f"or is already spent")
    # A coin spent by a block is gone too (another tx than the confirmed one).
    coin = coinbase_coin(h, 0)
    assert h.mine([pay(coin, "bob")], fees=SIZE_1_1).status == "connected"
    assert code_of(pool, pay(coin, "carol")).code == "bad-txns-inputs-missingorspent"
    # An output index past a mempool tx's outputs does not exist.
    parent = pay(coinbase_coin(h, 1))
    pool.accept(parent)
    bad_index = (OutPoint(parent.txid, 1), Coin(1 * COIN, owner("bob"), 0, False))
    error = code_of(pool, pay(bad_index, signer="bob", fee=1000))
    assert (error.code, error.message.split(",")[0]) == (
        "bad-txns-inputs-missingorspent", f"input 0 spends {parent.txid.hex()}:1")


def test_premature_coinbase_spend_is_checked_at_tip_plus_one(h):
    pool = pool_of(h)
    # Block 21 may spend a coinbase of height 11 (10 confirmations) but not of 12.
    young = coinbase_coin(h, TIP + 2 - 10)
    error = code_of(pool, pay(young))
    assert error.code == "bad-txns-premature-spend-of-coinbase" and error.kind == "consensus"
    assert error.message == ("input 0 spends a coinbase output from height 12 at height 21: "
                             "9 confirmations < maturity 10")
    assert pool.accept(pay(coinbase_coin(h, TIP + 1 - 10)))[0] == SIZE_1_1
    # One block later the young coin is mature.
    h.mine_empty(1)
    assert pool_of(h).accept(pay(young))[0] == SIZE_1_1


def test_nonfinal_is_checked_at_tip_plus_one(h):
    pool = pool_of(h)
    coin = coinbase_coin(h, 0)
    late = spend([coin], "alice", [("bob", 50 * COIN - 500)], locktime=TIP + 2)
    error = code_of(pool, late)
    assert error.code == "bad-txns-nonfinal" and error.kind == "consensus"
    assert error.message == "locktime 22 > height 21 of the block that would include it"
    ok = spend([coin], "alice", [("bob", 50 * COIN - 500)], locktime=TIP + 1)
    assert pool.accept(ok) == (500, [])


def test_bad_signature_wrong_owner_and_other_network(h):
    pool = pool_of(h)
    coin = coinbase_coin(h, 0)
    good = pay(coin)
    tampered = Tx(good.version, good.inputs, (TxOut(good.outputs[0].amount, owner("mallory")),),
                  good.locktime)
    error = code_of(pool, tampered)
    assert error.code == "bad-txns-bad-signature" and error.kind == "consensus"
    assert error.message == (f"input 0 signature does not verify for the owner of {coin[0]} "
                             f"(wrong key, altered tx, other network, or high S)")
    devnet_signed = spend([coin], "alice", [("bob", 50 * COIN - SIZE_1_1)], net=DEVNET)
    assert code_of(pool, devnet_signed).code == "bad-txns-bad-signature"
    stolen = pay(coin, "mallory", signer="mallory")
    error = code_of(pool, stolen)
    assert error.code == "bad-txns-wrong-owner"
    assert len(pool) == 0 and pool.spends == {}
    assert pool.accept(good)[0] == SIZE_1_1


def test_fee_policy_is_checked_before_signatures(h):
    """Core's order: fee and size policy, then each input's signature."""
    pool = pool_of(h)
    cheap = pay(coinbase_coin(h, 0), fee=1)
    forged = Tx(1, cheap.inputs, (TxOut(cheap.outputs[0].amount, owner("mallory")),), 0)
    assert code_of(pool, forged).code == "min-relay-fee-not-met"


# -- chains of unconfirmed txs ----------------------------------------------------------------------

def test_chain_of_unconfirmed_txs_is_accepted(h):
    pool = pool_of(h)
    a = spend([coinbase_coin(h, 0)], "alice", [("bob", 20 * COIN), ("alice", 30 * COIN - 1000)])
    b = spend([out(a, 0)], "bob", [("carol", 20 * COIN - 1000)])
    c = spend([out(b, 0)], "carol", [("dave", 20 * COIN - 2000)])
    for tx in (a, b, c):
        pool.accept(tx)
    assert list(pool.entries) == [a.txid, b.txid, c.txid]
    assert pool.entries[a.txid].children == {b.txid}
    assert pool.entries[b.txid].parents == {a.txid}
    assert pool.entries[b.txid].children == {c.txid}
    assert pool.entries[c.txid].parents == {b.txid}
    assert pool.entries[c.txid].fee == 1000
    assert pool.bytes == SIZE_1_2 + 2 * SIZE_1_1
    assert pool.get_coin(OutPoint(b.txid, 0)) is None  # spent by c
    assert pool.get_coin(OutPoint(c.txid, 0)) == Coin(20 * COIN - 2000, owner("dave"), TIP + 1, False)


def chain_of(coin, length: int, fee: int = 500) -> list[Tx]:
    txs, current = [], coin
    for _ in range(length):
        tx = pay(current, "alice", fee=fee)
        txs.append(tx)
        current = out(tx, 0)
    return txs


def test_too_long_mempool_chain_25_ok_26th_refused(h):
    pool = pool_of(h)
    txs = chain_of(coinbase_coin(h, 0), MAX_CHAIN + 1)
    assert MAX_CHAIN == 25
    for tx in txs[:25]:
        pool.accept(tx)
    assert len(pool) == 25
    error = code_of(pool, txs[25])
    assert error.code == "too-long-mempool-chain" and error.kind == "policy"
    assert error.message == "25 unconfirmed ancestors + this tx > 25"
    assert len(pool) == 25 and txs[25].txid not in pool


def test_too_long_mempool_chain_counts_descendants_too(h):
    pool = pool_of(h)
    coin = coinbase_coin(h, 0)
    root = spend([coin], "alice", [("alice", 1 * COIN)] * 25 + [("alice", 25 * COIN - 10_000)])
    pool.accept(root)
    children = [pay(out(root, i)) for i in range(25)]
    for child in children[:24]:
        pool.accept(child)
    assert len(pool) == 25  # root + 24 children: a family of 25
    error = code_of(pool, children[24])
    assert error.code == "too-long-mempool-chain"
    assert error.message == (f"unconfirmed tx {root.txid.hex()} would have 25 descendants; "
                             f"a chain holds at most 25 txs")


def test_once_confirmed_a_chain_may_grow_again(h):
    pool = pool_of(h)
    txs = chain_of(coinbase_coin(h, 0), 26)
    for tx in txs[:25]:
        pool.accept(tx)
    outcome = h.mine([txs[0]], fees=500)
    assert [(t.txid, r) for t, r in pool.update_for_chain(outcome.connected, [])] == [
        (txs[0].txid, "block")]
    assert pool.entries[txs[1].txid].parents == set()
    assert pool.accept(txs[25])[0] == 500
    assert len(pool) == 25


# -- a full mempool ----------------------------------------------------------------------------------

def test_mempool_full_refuses_rates_not_above_the_lowest(h):
    pool = pool_of(h, max_bytes=3 * SIZE_1_1)
    for height, rate in ((0, 2), (1, 3), (2, 4)):
        pool.accept(pay(coinbase_coin(h, height), fee=rate * SIZE_1_1))
    assert pool.bytes == 513
    for rate in (1, 2):
        error = code_of(pool, pay(coinbase_coin(h, 3), fee=rate * SIZE_1_1))
        assert error.code == "mempool-full" and error.kind == "policy"
        assert error.message == (f"mempool holds 513 of 513 bytes and this tx's fee rate "
                                 f"{rate}.00 units/byte is not above the lowest")
    assert pool.bytes == 513 and len(pool) == 3


def test_mempool_full_evicts_lowest_rate_with_its_descendants(h):
    pool = pool_of(h, max_bytes=4 * SIZE_1_1)
    low = spend([coinbase_coin(h, 0)], "alice", [("bob", 50 * COIN - 2 * SIZE_1_1)])
    low_child = pay(out(low, 0), "carol", fee=5 * SIZE_1_1, signer="bob")
    mid = pay(coinbase_coin(h, 1), fee=3 * SIZE_1_1)
    high = pay(coinbase_coin(h, 2), fee=4 * SIZE_1_1)
    for tx in (low, low_child, mid, high):
        pool.accept(tx)
    assert pool.bytes == 684 == pool.max_bytes
    better = pay(coinbase_coin(h, 3), fee=599)  # 3.50 units/byte: above 2 and 3
    fee, evicted = pool.accept(better)
    assert fee == 599
    assert {tx.txid for tx in evicted} == {low.txid, low_child.txid}
    assert set(pool.entries) == {mid.txid, high.txid, better.txid}
    assert pool.bytes == 3 * SIZE_1_1
    assert pool.spends == {mid.inputs[0].outpoint: mid.txid, high.inputs[0].outpoint: high.txid,
                           better.inputs[0].outpoint: better.txid}
    # The evicted tx's coin is spendable again.
    assert pool.get_coin(low.inputs[0].outpoint) is not None


def test_mempool_full_evicts_several_when_needed(h):
    pool = pool_of(h, max_bytes=SIZE_1_1 + SIZE_1_2)
    a = pay(coinbase_coin(h, 0), fee=2 * SIZE_1_1)
    b = spend([coinbase_coin(h, 1)], "alice", [("carol", 1 * COIN), ("alice", 49 * COIN - 600)])
    pool.accept(a)
    pool.accept(b)
    assert pool.bytes == 370
    big = spend([coinbase_coin(h, 2)], "alice", [("dave", 1 * COIN), ("alice", 49 * COIN - 2000)])
    fee, evicted = pool.accept(big)  # 199 bytes: evicting a alone frees only 171
    assert fee == 2000 and {t.txid for t in evicted} == {a.txid, b.txid}
    assert list(pool.entries) == [big.txid] and pool.bytes == SIZE_1_2


def test_mempool_full_never_evicts_the_new_txs_own_ancestors(h):
    """A child paying 10 units/byte on a 1 unit/byte parent may evict the
    3 units/byte tx, but never its own parent (its input would vanish)."""
    pool = pool_of(h, max_bytes=2 * SIZE_1_1)
    parent = pay(coinbase_coin(h, 0), fee=SIZE_1_1)
    other = pay(coinbase_coin(h, 1), fee=3 * SIZE_1_1)
    pool.accept(parent)
    pool.accept(other)
    child = pay(out(parent, 0), "carol", fee=10 * SIZE_1_1, signer="bob")
    fee, evicted = pool.accept(child)
    assert fee == 10 * SIZE_1_1
    assert [tx.txid for tx in evicted] == [other.txid]
    assert list(pool.entries) == [parent.txid, child.txid]
    assert pool.entries[child.txid].parents == {parent.txid}
    assert pool.entries[parent.txid].children == {child.txid}
    assert pool.bytes == 2 * SIZE_1_1
    assert pool.spends == {parent.inputs[0].outpoint: parent.txid,
                           child.inputs[0].outpoint: child.txid}


# -- check() -----------------------------------------------------------------------------------------------

def test_check_changes_nothing(h):
    pool = pool_of(h, max_bytes=2 * SIZE_1_1)
    a = pay(coinbase_coin(h, 0), fee=2 * SIZE_1_1)
    child = pay(out(a, 0), fee=3 * SIZE_1_1, signer="bob", to="carol")
    pool.accept(a)
    pool.accept(child)
    before = snapshot(pool)
    evictor = pay(coinbase_coin(h, 1), fee=5 * SIZE_1_1)
    fee, parents, evict = pool.check(evictor)
    assert fee == 5 * SIZE_1_1 and parents == set() and set(evict) == {a.txid, child.txid}
    assert snapshot(pool) == before
    # A child of a mempool tx reports its parent; the pool stays the same.
    pool2 = pool_of(h)
    pool2.accept(a)
    before = snapshot(pool2)
    assert pool2.check(child) == (3 * SIZE_1_1, {a.txid}, [])
    assert snapshot(pool2) == before
    with pytest.raises(RuleError) as info:
        pool2.check(a)
    assert info.value.code == "txn-already-in-mempool"
    assert snapshot(pool2) == before


# -- following the chain -------------------------------------------------------------------------------

def test_block_removes_its_txs_with_reason_block(h):
    pool = pool_of(h)
    a = spend([coinbase_coin(h, 0)], "alice", [("bob", 20 * COIN), ("alice", 30 * COIN - 1000)])
    child = pay(out(a, 0), "carol", fee=1000, signer="bob")
    other = pay(coinbase_coin(h, 1))
    for tx in (a, child, other):
        pool.accept(tx)
    outcome = h.mine([a], fees=1000)
    assert outcome.status == "connected"
    removed = pool.update_for_chain(outcome.connected, outcome.disconnected)
    assert [(t.txid, r) for t, r in removed] == [(a.txid, "block")]
    assert set(pool.entries) == {child.txid, other.txid}
    assert pool.entries[child.txid].parents == set()
    assert pool.bytes == 2 * SIZE_1_1
    assert a.inputs[0].outpoint not in pool.spends
    # The child now spends a confirmed coin, as the next block will see it.
    assert pool.get_coin(OutPoint(a.txid, 1)) == Coin(30 * COIN - 1000, owner("alice"), TIP + 1, False)


def test_block_conflict_removes_the_rival_and_its_descendants(h):
    pool = pool_of(h)
    coin = coinbase_coin(h, 0)
    rival = spend([coin], "alice", [("bob", 20 * COIN), ("alice", 30 * COIN - 1000)])
    child = pay(out(rival, 0), "carol", fee=1000, signer="bob")
    grandchild = pay(out(child, 0), "dave", fee=1000, signer="carol")
    unrelated = pay(coinbase_coin(h, 1))
    for tx in (rival, child, grandchild, unrelated):
        pool.accept(tx)
    winner = pay(coin, "erin", fee=5000)
    outcome = h.mine([winner], fees=5000)
    assert outcome.status == "connected"
    removed = pool.update_for_chain(outcome.connected, [])
    assert sorted((t.txid, r) for t, r in removed) == sorted(
        [(rival.txid, "conflict"), (child.txid, "conflict"), (grandchild.txid, "conflict")])
    assert list(pool.entries) == [unrelated.txid]
    assert pool.spends == {unrelated.inputs[0].outpoint: unrelated.txid}
    assert pool.bytes == SIZE_1_1


def test_reorg_returns_disconnected_txs_and_drops_invalid_ones(h):
    pool = pool_of(h)
    fork = h.tip
    c0, c1, c2, c3 = (coinbase_coin(h, height) for height in range(4))
    waiting = pay(c0, "bob")                  # stays in the mempool throughout
    t1 = pay(c1, "carol")                     # mempool, then block A, then back
    t3 = spend([c2], "alice", [("dave", 20 * COIN), ("alice", 30 * COIN - 1000)])  # only in A
    both = pay(c3, "erin")                    # in A and in the new branch
    for tx in (waiting, t1):
        pool.accept(tx)
    block_a = h.block([t1, t3, both], fees=2 * SIZE_1_1 + 1000)
    outcome = h.chain.process_block(block_a)
    assert outcome.status == "connected"
    assert [(t.txid, r) for t, r in pool.update_for_chain(outcome.connected, [])] == [
        (t1.txid, "block")]
    assert set(pool.entries) == {waiting.txid}

    # A longer branch from the fork where c2 pays mallory instead: t3 becomes invalid.
    double = pay(c2, "mallory", fee=2000)
    b1 = h.block([double, both], parent=fork, reward_to="bob", fees=2000 + SIZE_1_1)
    assert h.chain.process_block(b1).status == "side"
    b2 = h.block(parent=h.chain.index[b1.hash], reward_to="bob")
    outcome = h.chain.process_block(b2)
    assert outcome.status == "connected"
    assert [b.hash for b in outcome.disconnected] == [block_a.hash]
    assert [b.hash for b in outcome.connected] == [b1.hash, b2.hash]

    # t1 comes back; t3 (now a double spend) and 'both' (confirmed again) do not.
    assert pool.update_for_chain(outcome.connected, outcome.disconnected) == []
    assert set(pool.entries) == {t1.txid, waiting.txid}
    assert block_a.txs[0].txid not in pool      # never a coinbase
    assert t3.txid not in pool and both.txid not in pool and double.txid not in pool
    assert pool.bytes == 2 * SIZE_1_1
    assert pool.spends == {c0[0]: waiting.txid, c1[0]: t1.txid}
    assert pool.entries[t1.txid].fee == SIZE_1_1


def test_reorg_drops_a_spend_of_a_vanished_coinbase_as_reorg(h):
    """A pooled tx spending the coinbase of a block the reorg disconnects has
    no coin any more: removed with reason 'reorg'. Coinbases never return."""
    pool = pool_of(h)
    fork = h.tip
    branch_a = h.mine_empty(11, reward_to="bob")           # heights 21..31
    bob_coinbase = (OutPoint(branch_a[0].txs[0].txid, 0),
                    Coin(50 * COIN, owner("bob"), TIP + 1, True))
    spender = pay(bob_coinbase, "carol", signer="bob")     # 32 - 21 = 11 confirmations
    keeper = pay(coinbase_coin(h, 0))
    pool.accept(spender)
    pool.accept(keeper)
    parent = fork
    for _ in range(12):                                    # more work: 12 blocks from 20
        block = h.block(parent=parent, reward_to="erin")
        outcome = h.chain.process_block(block)
        parent = h.chain.index[block.hash]
    assert outcome.status == "connected" and h.tip.hash == block.hash
    assert len(outcome.disconnected) == 11 and len(outcome.connected) == 12
    removed = pool.update_for_chain(outcome.connected, outcome.disconnected)
    assert [(t.txid, r) for t, r in removed] == [(spender.txid, "reorg")]
    assert list(pool.entries) == [keeper.txid]
    assert all(b.txs[0].txid not in pool for b in branch_a)
    assert pool.bytes == SIZE_1_1


def test_reorg_reasons_for_pooled_txs_block_and_conflict(h):
    """After a reorg the new branch's blocks are followed like any block: a
    pooled tx they confirm goes as 'block', one spending a coin they spend
    goes as 'conflict' with its descendants (as in Core's removeForBlock)."""
    pool = pool_of(h)
    fork = h.tip
    c0, c1, c2 = (coinbase_coin(h, height) for height in range(3))
    confirmed_later = pay(c0, "bob")
    loser = spend([c1], "alice", [("carol", 20 * COIN), ("alice", 30 * COIN - 1000)])
    loser_child = pay(out(loser, 0), "dave", fee=1000, signer="carol")
    keeper = pay(c2, "erin")
    block_a = h.block()
    outcome = h.chain.process_block(block_a)
    assert pool.update_for_chain(outcome.connected, []) == []
    for tx in (confirmed_later, loser, loser_child, keeper):
        pool.accept(tx)
    winner = pay(c1, "mallory", fee=3000)
    b1 = h.block([confirmed_later, winner], parent=fork, reward_to="bob", fees=SIZE_1_1 + 3000)
    assert h.chain.process_block(b1).status == "side"
    outcome = h.chain.process_block(h.block(parent=h.chain.index[b1.hash], reward_to="bob"))
    assert [b.hash for b in outcome.disconnected] == [block_a.hash]
    removed = pool.update_for_chain(outcome.connected, outcome.disconnected)
    assert sorted((t.txid, r) for t, r in removed) == sorted(
        [(confirmed_later.txid, "block"), (loser.txid, "conflict"), (loser_child.txid, "conflict")])
    assert list(pool.entries) == [keeper.txid]
    assert pool.bytes == SIZE_1_1


def test_reorg_returns_a_parent_and_its_child_in_block_order(h):
    """Block A (21) holds a parent (locktime 21) and its child, never in the
    mempool; a 2-block branch replaces A: both come back, parent first."""
    pool = pool_of(h)
    fork = h.tip
    parent = spend([coinbase_coin(h, 11)], "alice", [("bob", 20 * COIN), ("alice", 30 * COIN - 1000)],
                   locktime=TIP + 1)
    child = pay(out(parent, 0), "carol", fee=1000, signer="bob")
    block_a = h.block([parent, child], fees=2000)
    outcome = h.chain.process_block(block_a)
    assert pool.update_for_chain(outcome.connected, []) == []
    b1 = h.block(parent=fork, reward_to="bob")
    h.chain.process_block(b1)
    b2 = h.block(parent=h.chain.index[b1.hash], reward_to="bob")
    outcome = h.chain.process_block(b2)
    assert [b.hash for b in outcome.disconnected] == [block_a.hash]
    assert pool.update_for_chain(outcome.connected, outcome.disconnected) == []
    assert list(pool.entries) == [parent.txid, child.txid]
    assert pool.entries[child.txid].parents == {parent.txid}


# -- block templates -------------------------------------------------------------------------------------

def test_select_by_fee_rate_parents_first_within_size(h):
    pool = pool_of(h)
    a = pay(coinbase_coin(h, 0), fee=4 * SIZE_1_1)
    a_child = pay(out(a, 0), "carol", fee=SIZE_1_1 + 50, signer="bob")
    b = pay(coinbase_coin(h, 1), fee=3 * SIZE_1_1)
    c = pay(coinbase_coin(h, 2), fee=2 * SIZE_1_1)
    for tx in (c, a, b, a_child):
        pool.accept(tx)
    txs, fees = pool.select(1_000_000)
    assert [t.txid for t in txs] == [a.txid, b.txid, c.txid, a_child.txid]
    assert fees == 9 * SIZE_1_1 + SIZE_1_1 + 50
    txs, fees = pool.select(2 * SIZE_1_1)
    assert [t.txid for t in txs] == [a.txid, b.txid] and fees == 7 * SIZE_1_1
    txs, fees = pool.select(SIZE_1_1 - 1)
    assert (txs, fees) == ([], 0)


def test_select_never_puts_a_child_before_its_parent(h):
    pool = pool_of(h)
    parent = pay(coinbase_coin(h, 0), fee=2 * SIZE_1_1)
    child = pay(out(parent, 0), "carol", fee=10 * SIZE_1_1, signer="bob")
    grandchild = pay(out(child, 0), "dave", fee=20 * SIZE_1_1, signer="carol")
    other = pay(coinbase_coin(h, 1), fee=5 * SIZE_1_1)
    for tx in (parent, child, grandchild, other):
        pool.accept(tx)
    txs, fees = pool.select(1_000_000)
    order = [t.txid for t in txs]
    assert sorted(order) == sorted([parent.txid, child.txid, grandchild.txid, other.txid])
    assert order.index(parent.txid) < order.index(child.txid) < order.index(grandchild.txid)
    assert fees == 37 * SIZE_1_1
    # The selection is a valid block.
    assert h.mine(txs, fees=fees).status == "connected"


def test_select_skips_a_parent_that_does_not_fit_and_its_children(h):
    pool = pool_of(h)
    big = spend([coinbase_coin(h, 0)], "alice", [("bob", 10 * COIN), ("alice", 40 * COIN - 10 * SIZE_1_2)])
    big_child = pay(out(big, 0), "carol", fee=10 * SIZE_1_1, signer="bob")
    small = pay(coinbase_coin(h, 1), fee=SIZE_1_1)
    for tx in (big, big_child, small):
        pool.accept(tx)
    txs, fees = pool.select(SIZE_1_1 + 27)   # 198 bytes: big (199) does not fit
    assert [t.txid for t in txs] == [small.txid] and fees == SIZE_1_1
    txs, fees = pool.select(SIZE_1_2 + SIZE_1_1)
    assert [t.txid for t in txs] == [big.txid, big_child.txid]
    assert fees == 10 * SIZE_1_2 + 10 * SIZE_1_1


def test_expire_after_two_weeks_with_descendants(h):
    now = [1000.0]
    pool = Mempool(h.chain, min_fee_rate=1, clock=lambda: now[0])
    old = pay(coinbase_coin(h, 0))
    pool.accept(old)
    now[0] += 10
    young_child = pay(out(old, 0), "carol", fee=1000, signer="bob")
    pool.accept(young_child)
    assert pool.expire(now[0] + 14 * 24 * 3600 - 10) == []
    removed = pool.expire(now[0] + 14 * 24 * 3600 - 9)
    assert sorted((t.txid, r) for t, r in removed) == sorted(
        [(old.txid, "expiry"), (young_child.txid, "expiry")])
    assert len(pool) == 0 and pool.bytes == 0 and pool.spends == {}


def test_expire_looks_only_when_due_and_follows_removals_and_put_backs(h):
    """``expire`` is a no-op until ``oldest`` (a lower bound of the arrival
    times) says an entry may be due; the bound is set exactly by each look
    through, so a removed oldest entry or an older one put back (a reorg's
    ``accept(tx, time)``) never delays or hastens an expiry."""
    week = EXPIRY_SECONDS // 2
    now = [1000.0]
    pool = Mempool(h.chain, min_fee_rate=1, clock=lambda: now[0])
    assert pool.oldest == math.inf and pool.expire(1e12) == []
    first = pay(coinbase_coin(h, 0))
    pool.accept(first)
    now[0] += week
    second = pay(coinbase_coin(h, 1))
    pool.accept(second)
    assert pool.oldest == 1000.0
    pool._remove_one(first.txid)  # as a block confirming it would (update_for_chain)
    assert pool.oldest == 1000.0  # a lower bound only: the next look through corrects it
    assert pool.expire(1000.0 + EXPIRY_SECONDS + 1) == [] and pool.oldest == 1000.0 + week
    assert pool.expire(1000.0 + week + EXPIRY_SECONDS) == []  # exactly two weeks: not yet
    looks = [0]

    class Counted(dict):
        def items(self):
            looks[0] += 1
            return super().items()
    pool.entries = Counted(pool.entries)
    for second_later in range(1, 100):  # the node's timer, every second: nothing due, no look
        assert pool.expire(1000.0 + week + second_later) == []
    assert looks[0] == 0
    third = pay(coinbase_coin(h, 2))
    pool.accept(third, time=500.0)  # put back after a reorg with its first arrival time
    assert pool.oldest == 500.0
    assert [(t.txid, r) for t, r in pool.expire(500.0 + EXPIRY_SECONDS + 1)] == [(third.txid, "expiry")]
    assert pool.oldest == 1000.0 + week and second.txid in pool
    assert [t.txid for t, _ in pool.expire(1000.0 + week + EXPIRY_SECONDS + 1)] == [second.txid]
    assert pool.oldest == math.inf and len(pool) == 0
