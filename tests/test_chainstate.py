"""The chain state (chain/chainstate.py) with its SQLite store (chain/storage.py):
best chain by most work, first-seen tie break, reorgs and the indexes that
follow them, invalid-block caching, orphans, headers first, persistence and
the atomicity of connecting or disconnecting a block.

Deterministic scenarios on regtest with a fixed clock (tests/helpers.py).
"""

import pytest

from chain.amounts import COIN
from chain.block import Block, Header
from chain.chainstate import FAILED, HAVE_DATA, BlockEntry, ChainState
from chain.orphans import MAX_ORPHAN_BLOCKS
from chain.coins import Coin
from chain.errors import RuleError
from chain.params import MAX_FUTURE_SECONDS, REGTEST
from chain.pow import block_work, compact_to_target, hash_meets_target
from chain.storage import Store
from chain.tx import OutPoint, Tx, TxOut
from node.messages import MAX_HEADERS

from .helpers import NOW, FailingDB, Harness, InjectedFault, owner, spend

NAMES = ("alice", "bob", "carol", "dave")
SUBSIDY = 50 * COIN


# -- helpers -----------------------------------------------------------------------

def coin_of(tx: Tx, index: int, height: int) -> tuple[OutPoint, Coin]:
    """The (OutPoint, Coin) that output ``index`` of ``tx`` becomes at ``height``."""
    out = tx.outputs[index]
    return OutPoint(tx.txid, index), Coin(out.amount, out.owner, height, tx.is_coinbase)


def genesis_coin() -> tuple[OutPoint, Coin]:
    return coin_of(REGTEST.genesis.txs[0], 0, 0)


def replay(blocks: list[Block]) -> dict[OutPoint, Coin]:
    """The UTXO set rebuilt from scratch from the blocks of a chain, genesis first.
    Fails if any input spends a coin that does not exist yet or was spent before."""
    coins: dict[OutPoint, Coin] = {}
    for height, block in enumerate(blocks):
        for tx in block.txs:
            for txin in tx.inputs:
                assert txin.outpoint in coins, f"{txin.outpoint} spent twice or before it exists"
                del coins[txin.outpoint]
            for index, out in enumerate(tx.outputs):
                coins[OutPoint(tx.txid, index)] = Coin(out.amount, out.owner, height,
                                                       tx.is_coinbase)
    return coins


def active_blocks(chain: ChainState) -> list[Block]:
    return [chain.get_block(entry.hash) for entry in chain.active]


def state_of(chain: ChainState, txids=()) -> dict:
    """Everything the store says about the active chain."""
    store = chain.store
    return {
        "coins": store.all_coins(),
        "stats": store.utxo_stats(),
        "active": store.active_hashes(),
        "tip_meta": store.get_meta("tip"),
        "history": {name: store.history_of(owner(name)) for name in NAMES},
        "coins_of": {name: store.coins_of(owner(name)) for name in NAMES},
        "txindex": {txid: store.tx_location(txid) for txid in txids},
    }


def index_statuses(chain: ChainState) -> dict[bytes, tuple]:
    return {h: (e.height, e.status, e.reason, e.seq, e.chainwork,
                e.parent.hash if e.parent else None) for h, e in chain.index.items()}


def assert_consistent(chain: ChainState) -> None:
    """Memory and disk agree, and the UTXO set is the replay of the active chain."""
    store = chain.store
    assert [e.hash for e in chain.active] == store.active_hashes()
    assert store.get_meta("tip") == chain.tip.hash
    expected = replay(active_blocks(chain))
    assert store.all_coins() == expected
    assert store.utxo_stats() == (len(expected), sum(c.amount for c in expected.values()))


def without_work(header: Header) -> Header:
    """The header with the first nonce whose hash misses its target (high-hash)."""
    target = compact_to_target(header.bits)[0]
    nonce = header.nonce
    while True:
        candidate = Header(header.version, header.prev_hash, header.merkle_root, header.time,
                           header.bits, nonce)
        if not hash_meets_target(candidate.hash, target):
            return candidate
        nonce += 1


def inject_fault(monkeypatch, store: Store, fail_at: int, on_call: int = 1) -> dict:
    """Make the ``on_call``-th ``store.apply_block`` crash at its ``fail_at``-th SQL
    statement (or, if it has fewer, after its last one, before COMMIT)."""
    real_apply = store.apply_block
    real_write = store._write
    calls = {"n": 0, "statements_run": None}

    def write(statements):
        def sabotaged(db):
            proxy = FailingDB(db, fail_at)
            try:
                statements(proxy)
            finally:
                calls["statements_run"] = proxy.calls
            raise InjectedFault("crash after the last statement, before COMMIT")
        real_write(sabotaged)

    def apply_block(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] != on_call:
            return real_apply(*args, **kwargs)
        store._write = write
        try:
            return real_apply(*args, **kwargs)
        finally:
            del store._write

    monkeypatch.setattr(store, "apply_block", apply_block)
    return calls


@pytest.fixture
def mature():
    """A regtest chain at height 10: the genesis coin (alice, 50 TOY) and the
    coinbase of height 1 (alice) can be spent in the next block."""
    h = Harness()
    h.mine_empty(10)
    return h


def two_spends(h: Harness):
    """tx1: alice's genesis coin -> bob 20, alice 29 (fee 1 TOY); tx2 spends tx1's
    bob output in the same block -> carol 15, bob 4.5 (fee 0.5 TOY)."""
    tx1 = spend([genesis_coin()], "alice", [("bob", 20 * COIN), ("alice", 29 * COIN)])
    tx2 = spend([coin_of(tx1, 0, h.tip.height + 1)], "bob",
                [("carol", 15 * COIN), ("bob", 45 * COIN // 10)])
    return tx1, tx2, COIN + COIN // 2


# -- linear growth -----------------------------------------------------------------

def test_linear_growth_heights_tip_and_supply():
    h = Harness()
    chain = h.chain
    assert chain.height == 0 and chain.tip.hash == REGTEST.genesis.hash
    assert chain.store.utxo_stats() == (1, SUBSIDY)
    blocks = []
    for i in range(12):
        block = h.block(reward_to=NAMES[i % 4])
        outcome = chain.process_block(block)
        assert outcome.status == "connected" and outcome.error is None
        assert outcome.connected == [block] and outcome.disconnected == []
        assert chain.height == i + 1
        assert chain.tip.hash == block.hash and chain.tip.height == i + 1
        blocks.append(block)

    all_blocks = [REGTEST.genesis] + blocks
    hashes = [b.hash for b in all_blocks]
    assert [e.hash for e in chain.active] == hashes
    assert chain.store.active_hashes() == hashes
    assert chain.store.get_meta("tip") == blocks[-1].hash
    for height, block in enumerate(all_blocks):
        assert chain.entry_at(height).hash == block.hash
        assert chain.index[block.hash].height == height
        assert chain.get_block(block.hash) == block
        assert chain.store.tx_location(block.txs[0].txid) == (height, 0)
        assert chain.find_tx(block.txs[0].txid) == (block.txs[0], chain.entry_at(height))
    assert chain.entry_at(13) is None and chain.entry_at(-1) is None
    work = block_work(REGTEST.pow_limit_bits)  # each block's, genesis too (Core's nChainWork)
    assert [e.chainwork for e in chain.active] == [work * (k + 1) for k in range(13)]

    supply = sum(out.amount for b in all_blocks for out in b.txs[0].outputs)
    assert supply == 13 * SUBSIDY
    assert chain.store.utxo_stats() == (13, supply)
    assert {n: h.balance(n) for n in NAMES} == {"alice": 4 * SUBSIDY, "bob": 3 * SUBSIDY,
                                               "carol": 3 * SUBSIDY, "dave": 3 * SUBSIDY}
    assert [c.height for _, c in h.coins_of("bob")] == [2, 6, 10]
    assert all(c.coinbase for _, c in h.coins_of("bob"))
    assert chain.store.history_of(owner("carol")) == [
        (all_blocks[k].txs[0].txid, k, 0, SUBSIDY) for k in (3, 7, 11)]
    assert_consistent(chain)

    assert chain.process_block(blocks[-1]).status == "duplicate"
    assert chain.process_block(blocks[3]).status == "duplicate"
    assert chain.process_block(REGTEST.genesis).status == "duplicate"
    assert chain.height == 12


# -- reorgs --------------------------------------------------------------------------

def test_reorg_to_longer_branch_moves_tx_index_coins_and_history(mature):
    h = mature
    chain, store = h.chain, h.chain.store
    fork = h.tip
    gcoin = genesis_coin()
    tx1 = spend([gcoin], "alice", [("bob", 30 * COIN), ("alice", 19 * COIN)])  # fee 1 TOY
    a1 = h.block([tx1], fees=COIN)
    assert chain.process_block(a1).status == "connected"
    a2 = h.block()
    assert chain.process_block(a2).status == "connected"

    assert chain.find_tx(tx1.txid) == (tx1, chain.index[a1.hash])
    assert store.tx_location(tx1.txid) == (11, 1)
    assert store.get_coin(gcoin[0]) is None
    bob_coin = coin_of(tx1, 0, 11)
    assert store.coins_of(owner("bob")) == [bob_coin]
    assert store.history_of(owner("bob")) == [(tx1.txid, 11, 1, 30 * COIN)]
    assert (tx1.txid, 11, 1, 19 * COIN - SUBSIDY) in store.history_of(owner("alice"))
    old_history_alice = store.history_of(owner("alice"))

    # A branch from the fork, paying carol: shorter, then equal, then longer.
    b1 = h.block(parent=fork, reward_to="carol")
    out = chain.process_block(b1)
    assert (out.status, out.connected, out.disconnected) == ("side", [], [])
    b2 = h.block(parent=chain.index[b1.hash], reward_to="carol")
    out = chain.process_block(b2)
    assert (out.status, out.connected, out.disconnected) == ("side", [], [])
    assert chain.tip.hash == a2.hash
    b3 = h.block(parent=chain.index[b2.hash], reward_to="carol")
    out = chain.process_block(b3)
    assert out.status == "connected" and out.error is None
    assert out.disconnected == [a2, a1]
    assert out.connected == [b1, b2, b3]
    assert chain.tip.hash == b3.hash and chain.height == 13

    # The tx confirmed only on the old branch is gone, and the coin it spent is back.
    assert chain.find_tx(tx1.txid) is None
    assert store.tx_location(tx1.txid) is None
    assert store.get_coin(gcoin[0]) == gcoin[1]
    assert store.get_coin(bob_coin[0]) is None
    assert store.coins_of(owner("bob")) == []
    assert store.history_of(owner("bob")) == []
    alice_history = store.history_of(owner("alice"))
    assert all(row[0] != tx1.txid for row in alice_history)
    assert alice_history == [(b.txs[0].txid, k, 0, SUBSIDY)
                             for k, b in enumerate(active_blocks(chain)[:11])]
    assert [c for _, c in store.coins_of(owner("carol"))] == [
        Coin(SUBSIDY, owner("carol"), height, True) for height in (11, 12, 13)]
    assert store.history_of(owner("carol")) == [
        (b.txs[0].txid, k, 0, SUBSIDY) for k, b in zip((11, 12, 13), (b1, b2, b3))]
    for block in (a1, a2):
        assert store.tx_location(block.txs[0].txid) is None
        assert store.get_undo(block.hash) is None
        assert chain.get_block(block.hash) == block  # still stored, as a side branch
        assert not chain.index[block.hash].failed
    for height, block in zip((11, 12, 13), (b1, b2, b3)):
        assert store.tx_location(block.txs[0].txid) == (height, 0)
    assert store.utxo_stats() == (14, 14 * SUBSIDY)
    assert_consistent(chain)

    # Extending the old branch past the new one brings everything back.
    a3 = h.block(parent=chain.index[a2.hash])
    assert chain.process_block(a3).status == "side"  # equal work: b3 was seen first
    assert chain.tip.hash == b3.hash
    a4 = h.block(parent=chain.index[a3.hash])
    out = chain.process_block(a4)
    assert out.status == "connected"
    assert out.disconnected == [b3, b2, b1]
    assert out.connected == [a1, a2, a3, a4]
    assert store.tx_location(tx1.txid) == (11, 1)
    assert chain.find_tx(tx1.txid) == (tx1, chain.index[a1.hash])
    assert store.coins_of(owner("bob")) == [bob_coin]
    assert store.history_of(owner("bob")) == [(tx1.txid, 11, 1, 30 * COIN)]
    assert store.history_of(owner("alice"))[:len(old_history_alice)] == old_history_alice
    assert store.get_coin(gcoin[0]) is None
    assert store.coins_of(owner("carol")) == []
    assert store.history_of(owner("carol")) == []
    assert_consistent(chain)


def test_tx_confirmed_on_both_branches_moves_to_its_new_place(mature):
    h = mature
    chain, store = h.chain, h.chain.store
    fork = h.tip
    tx1 = spend([genesis_coin()], "alice", [("bob", 50 * COIN)])
    a1 = h.block([tx1])
    assert chain.process_block(a1).status == "connected"
    assert store.tx_location(tx1.txid) == (11, 1)
    b1 = h.block(parent=fork, reward_to="carol")
    assert chain.process_block(b1).status == "side"
    b2 = h.block([tx1], parent=chain.index[b1.hash], reward_to="carol")
    out = chain.process_block(b2)
    assert out.disconnected == [a1] and out.connected == [b1, b2]
    assert store.tx_location(tx1.txid) == (12, 1)
    assert chain.find_tx(tx1.txid) == (tx1, chain.index[b2.hash])
    assert store.coins_of(owner("bob")) == [coin_of(tx1, 0, 12)]
    assert store.history_of(owner("bob")) == [(tx1.txid, 12, 1, 50 * COIN)]
    assert_consistent(chain)


@pytest.mark.parametrize("first", ["alice", "bob"])
def test_equal_work_first_seen_stays_then_extension_wins(first):
    h = Harness()
    h.mine_empty(2)
    fork = h.tip
    blocks = {name: h.block(parent=fork, reward_to=name) for name in ("alice", "bob")}
    second = "bob" if first == "alice" else "alice"
    assert h.chain.process_block(blocks[first]).status == "connected"
    out = h.chain.process_block(blocks[second])
    assert (out.status, out.connected, out.disconnected) == ("side", [], [])
    assert h.tip.hash == blocks[first].hash
    index = h.chain.index
    assert index[blocks[first].hash].chainwork == index[blocks[second].hash].chainwork
    assert h.chain.store.get_coin(OutPoint(blocks[second].txs[0].txid, 0)) is None
    assert h.chain.store.get_coin(OutPoint(blocks[first].txs[0].txid, 0)) is not None

    # A later block on the other branch gives it more work: it wins.
    child = h.block(parent=h.chain.index[blocks[second].hash], reward_to="carol")
    out = h.chain.process_block(child)
    assert out.status == "connected"
    assert out.disconnected == [blocks[first]]
    assert out.connected == [blocks[second], child]
    assert h.tip.hash == child.hash

    # Catching up again only ties: the tip stays.
    other = h.block(parent=h.chain.index[blocks[first].hash], reward_to="dave")
    out = h.chain.process_block(other)
    assert (out.status, out.connected, out.disconnected) == ("side", [], [])
    assert h.tip.hash == child.hash
    assert h.coins_of("dave") == []
    assert_consistent(h.chain)


def test_equal_work_goes_to_the_chain_whose_data_was_complete_first(tmp_path):
    """Core's nSequenceId: a tie goes to the tip whose whole chain had its
    data first. a2's body arrives first, but its chain is complete only when
    a1 comes, after b1 and b2: b2 stays the tip, before and after a restart."""
    path = tmp_path / "chain.sqlite"
    h = Harness(store=Store(path))
    chain = h.chain
    h.mine_empty(2)
    fork = h.tip
    a1 = h.block(parent=fork, reward_to="alice")
    a2 = h.block(parent=chain.accept_header(a1.header), reward_to="alice")
    b1 = h.block(parent=fork, reward_to="bob")
    b2 = h.block(parent=chain.accept_header(b1.header), reward_to="bob")
    for block in (a2, b2):
        chain.accept_header(block.header)
    assert chain.process_block(a2).status == "side"  # the first body, its chain incomplete
    assert chain.process_block(b1).status == "connected"
    assert chain.process_block(b2).status == "connected"
    out = chain.process_block(a1)
    assert (out.status, out.connected, out.disconnected) == ("side", [], [])
    assert chain.tip.hash == b2.hash
    index = chain.index
    assert index[a2.hash].chainwork == index[b2.hash].chainwork
    # Numbered in turn as each chain completes: genesis 1, the first two blocks 2
    # and 3, b1 4, b2 5, then a1 and a2 together, parent first.
    assert [index[b.hash].seq for b in (b1, b2, a1, a2)] == [4, 5, 6, 7]
    seqs = {hash_: entry.seq for hash_, entry in index.items()}
    chain.close()

    reopened = ChainState(REGTEST, Store(path), clock=lambda: NOW)
    try:
        assert reopened.tip.hash == b2.hash
        assert {hash_: entry.seq for hash_, entry in reopened.index.items()} == seqs
        h.chain = reopened
        later = h.block(parent=reopened.index[b1.hash], reward_to="carol")  # ties b2, complete last
        assert reopened.process_block(later).status == "side"
        assert reopened.index[later.hash].seq == max(seqs.values()) + 1 == 8
        assert reopened.tip.hash == b2.hash
    finally:
        reopened.close()


# -- invalid blocks --------------------------------------------------------------------

def test_better_branch_with_invalid_second_block_returns_to_old_tip(mature):
    h = mature
    chain, store = h.chain, h.chain.store
    fork = h.tip
    a1 = h.block(reward_to="dave")
    assert chain.process_block(a1).status == "connected"
    before = state_of(chain)

    valid = spend([genesis_coin()], "alice", [("bob", 50 * COIN)])
    b1 = h.block([valid], parent=fork, reward_to="carol")
    assert chain.process_block(b1).status == "side"
    overspend = spend([coin_of(valid, 0, 11)], "bob", [("carol", 60 * COIN)])
    b2 = h.block([overspend], parent=chain.index[b1.hash], reward_to="carol")
    out = chain.process_block(b2)

    assert out.status == "invalid"
    assert out.error.code == "bad-txns-in-belowout"
    assert out.disconnected == [a1, b1]
    assert out.connected == [b1, a1]
    assert chain.tip.hash == a1.hash and chain.height == 11
    assert state_of(chain) == before
    assert store.tx_location(valid.txid) is None
    assert chain.invalid_reason(b2.hash) == "bad-txns-in-belowout"
    assert chain.index[b2.hash].failed
    assert chain.invalid_reason(b1.hash) is None and not chain.index[b1.hash].failed
    assert_consistent(chain)

    # A child of the invalid block: bad-prevblk, remembered, nothing moves.
    b3 = h.block(parent=chain.index[b2.hash], reward_to="carol")
    out = chain.process_block(b3)
    assert out.status == "invalid" and out.error.code == "bad-prevblk"
    assert (out.connected, out.disconnected) == ([], [])
    assert chain.invalid_reason(b3.hash) == "bad-prevblk"
    assert chain.tip.hash == a1.hash

    # Resubmissions keep the original code.
    out = chain.process_block(b2)
    assert out.status == "duplicate-invalid" and out.error.code == "bad-txns-in-belowout"
    out = chain.process_block(b3)
    assert out.status == "duplicate-invalid" and out.error.code == "bad-prevblk"
    with pytest.raises(RuleError) as caught:
        chain.accept_header(b2.header)
    assert caught.value.code == "bad-txns-in-belowout"
    with pytest.raises(RuleError) as caught:
        chain.accept_header(b3.header)
    assert caught.value.code == "bad-prevblk"
    assert state_of(chain) == before

    # b1 itself is not tainted: a valid sibling of b2 makes its branch win.
    good = spend([coin_of(valid, 0, 11)], "bob", [("carol", 49 * COIN)])
    b2_ok = h.block([good], parent=chain.index[b1.hash], reward_to="carol", fees=COIN)
    out = chain.process_block(b2_ok)
    assert out.status == "connected"
    assert out.disconnected == [a1] and out.connected == [b1, b2_ok]
    assert store.tx_location(good.txid) == (12, 1)
    assert_consistent(chain)


def _branch_with_invalid_middle(h: Harness):
    """Old chain a1, a2 on the fork; branch b1, b2 (overspend), b3 delivered in
    order, so b3 is stored before anyone finds b2 invalid."""
    chain = h.chain
    fork = h.tip
    a1 = h.block(reward_to="dave")
    assert chain.process_block(a1).status == "connected"
    a2 = h.block(reward_to="dave")
    assert chain.process_block(a2).status == "connected"
    b1 = h.block(parent=fork, reward_to="carol")
    assert chain.process_block(b1).status == "side"
    cb2 = chain.get_block(chain.entry_at(2).hash).txs[0]  # alice's, mature at b2's height
    overspend = spend([coin_of(cb2, 0, 2)], "alice", [("bob", 50 * COIN + 1)])
    b2 = h.block([overspend], parent=chain.index[b1.hash], reward_to="carol")
    assert chain.process_block(b2).status == "side"  # equal work: not connected yet
    b3 = h.block(parent=chain.index[b2.hash], reward_to="carol")
    return a1, a2, b1, b2, b3


def test_invalid_block_found_during_reorg_marks_stored_descendants(mature):
    h = mature
    chain = h.chain
    a1, a2, b1, b2, b3 = _branch_with_invalid_middle(h)
    before = state_of(chain)
    out = chain.process_block(b3)
    assert out.disconnected == [a2, a1, b1]
    assert out.connected == [b1, a1, a2]
    assert chain.tip.hash == a2.hash
    assert state_of(chain) == before
    assert chain.invalid_reason(b2.hash) == "bad-txns-in-belowout"
    assert chain.invalid_reason(b3.hash) == "bad-prevblk"
    assert chain.index[b3.hash].failed and chain.index[b2.hash].failed
    assert chain.invalid_reason(b1.hash) is None
    assert chain.index[b3.hash] not in chain._candidates
    assert chain.process_block(b3).status == "duplicate-invalid"
    b4 = h.block(parent=chain.index[b3.hash], reward_to="carol")
    out = chain.process_block(b4)
    assert out.status == "invalid" and out.error.code == "bad-prevblk"
    assert_consistent(chain)


class CountingParent:
    """Stands in for BlockEntry's ``parent`` slot and counts how often it is read."""

    def __init__(self, slot):
        self.slot = slot
        self.reads = 0

    def __get__(self, entry, owner=None):
        if entry is None:
            return self
        self.reads += 1
        return self.slot.__get__(entry, owner)

    def __set__(self, entry, value):
        self.slot.__set__(entry, value)


def parent_reads_to_reject_a_fork_at_height_1(monkeypatch, height: int) -> int:
    """Parent links followed while processing an invalid child of genesis
    (bad-cb-height: it gets an index entry, then is marked invalid) on a chain
    of ``height`` blocks."""
    h = Harness()
    h.mine_empty(height)
    bad = h.block(parent=h.chain.index[REGTEST.genesis.hash], height=2, reward_to="mallory")
    counter = CountingParent(BlockEntry.__dict__["parent"])
    monkeypatch.setattr(BlockEntry, "parent", counter)
    out = h.chain.process_block(bad)
    monkeypatch.undo()
    assert out.status == "invalid" and out.error.code == "bad-cb-height"
    assert h.chain.invalid_reason(bad.hash) == "bad-cb-height"
    return counter.reads


def test_marking_a_block_invalid_visits_what_it_marks_not_the_index(monkeypatch):
    """The work of marking a block invalid does not grow with the chain:
    quadratic before (every index entry walked back to the fork height)."""
    assert parent_reads_to_reject_a_fork_at_height_1(monkeypatch, 40) == \
        parent_reads_to_reject_a_fork_at_height_1(monkeypatch, 160)


def test_marking_a_block_invalid_marks_exactly_its_descendants(mature):
    """A branching tree under an invalid block x2 (bodies, a header alone,
    two levels of siblings): exactly x2 and its descendants are marked; the
    sibling branch z and the active chain are not."""
    h = mature
    chain = h.chain
    fork = h.tip
    x1 = h.block(parent=fork, reward_to="carol")
    overspend = spend([genesis_coin()], "alice", [("bob", 50 * COIN + 1)])
    x2 = h.block([overspend], parent=chain.accept_header(x1.header), reward_to="carol")
    x2_entry = chain.accept_header(x2.header)
    x3a = h.block(parent=x2_entry, reward_to="carol")
    x3b = h.block(parent=x2_entry, reward_to="dave")
    x4 = h.block(parent=chain.accept_header(x3a.header), reward_to="carol")
    y = h.block(parent=chain.accept_header(x3b.header), reward_to="erin")
    chain.accept_header(x4.header)
    chain.accept_header(y.header)  # a header alone
    z1 = h.block(parent=fork, reward_to="erin")
    z2 = h.block(parent=chain.accept_header(z1.header), reward_to="erin")
    chain.accept_header(z2.header)
    for block in (x2, x3a, x3b, x4):
        assert chain.process_block(block).status == "side"  # waiting for x1
    out = chain.process_block(x1)  # x1..x4 complete: the walk connects x1, finds x2 invalid
    assert (out.status, out.connected, out.disconnected) == ("connected", [x1], [])
    failed = {hash_: entry.reason for hash_, entry in chain.index.items() if entry.failed}
    assert failed == {x2.hash: "bad-txns-in-belowout", x3a.hash: "bad-prevblk",
                      x3b.hash: "bad-prevblk", x4.hash: "bad-prevblk", y.hash: "bad-prevblk"}
    assert chain.tip.hash == x1.hash
    assert_consistent(chain)


def test_outcome_of_block_whose_ancestor_fails_during_its_own_activation(mature):
    """BlockOutcome: "side" means "stored on a branch with less work" and
    "invalid" means ``error`` says why. b3's branch has more work but b3 is found
    invalid (bad-prevblk) while processing b3 itself: the outcome must say so,
    not report a harmless side branch (submitblock would answer null)."""
    h = mature
    chain = h.chain
    *_, b3 = _branch_with_invalid_middle(h)
    out = chain.process_block(b3)
    assert chain.invalid_reason(b3.hash) == "bad-prevblk"
    assert out.status == "invalid"
    assert out.error is not None and out.error.code == "bad-prevblk"
    assert out.error.message == (f"block {b3.hash.hex()} builds on a block that was found "
                                 f"invalid while connecting its branch")


def test_rule_failure_is_cached_but_mutation_is_not(mature):
    h = mature
    chain = h.chain
    too_much = h.block(coinbase_outputs=[TxOut(SUBSIDY + 1, owner("alice"))])
    out = chain.process_block(too_much)
    assert out.status == "invalid" and out.error.code == "bad-cb-amount"
    assert chain.invalid_reason(too_much.hash) == "bad-cb-amount"
    out = chain.process_block(too_much)
    assert out.status == "duplicate-invalid" and out.error.code == "bad-cb-amount"
    assert chain.height == 10


@pytest.mark.parametrize("headers_first", [False, True])
@pytest.mark.parametrize("mutation", ["swap", "duplicate-last"])
def test_mutated_block_is_not_cached_invalid(mature, mutation, headers_first):
    h = mature
    chain = h.chain
    tx1 = spend([genesis_coin()], "alice", [("bob", 10 * COIN), ("alice", 39 * COIN)])
    cb1 = chain.get_block(chain.entry_at(1).hash).txs[0]
    tx2 = spend([coin_of(cb1, 0, 1)], "alice", [("carol", 50 * COIN)])
    genuine = h.block([tx1, tx2], fees=COIN)
    assert len(genuine.txs) == 3
    if mutation == "swap":
        mutated = Block(genuine.header, (genuine.txs[0], genuine.txs[2], genuine.txs[1]))
        code = "bad-txnmrklroot"
    else:
        mutated = Block(genuine.header, genuine.txs + (genuine.txs[2],))
        code = "bad-txns-duplicate"
    assert mutated.hash == genuine.hash and mutated != genuine
    if headers_first:
        chain.accept_header(genuine.header)
    before = state_of(chain)

    for _ in range(2):  # rejected each time with its own code, never "duplicate-invalid"
        out = chain.process_block(mutated)
        assert out.status == "invalid" and out.error.code == code
        assert chain.invalid_reason(genuine.hash) is None
        assert genuine.hash not in chain.invalid
        assert chain.tip.height == 10
    if headers_first:
        assert not chain.index[genuine.hash].failed
        assert not chain.index[genuine.hash].status & HAVE_DATA
    else:
        assert genuine.hash not in chain.index
    assert state_of(chain) == before

    out = chain.process_block(genuine)
    assert out.status == "connected" and out.connected == [genuine]
    assert chain.tip.hash == genuine.hash
    assert chain.store.tx_location(tx2.txid) == (11, 2)


def test_time_too_new_is_not_cached_and_accepted_later():
    t = [NOW]
    h = Harness(clock=lambda: t[0])
    h.mine_empty(2)
    late = h.block(time=NOW + MAX_FUTURE_SECONDS + 5)
    for _ in range(2):
        out = h.chain.process_block(late)
        assert out.status == "invalid" and out.error.code == "time-too-new"
        assert h.chain.invalid_reason(late.hash) is None
        assert late.hash not in h.chain.index
        assert h.chain.height == 2
    with pytest.raises(RuleError) as caught:
        h.chain.accept_header(late.header)
    assert caught.value.code == "time-too-new"
    t[0] += 5
    out = h.chain.process_block(late)
    assert out.status == "connected" and h.tip.hash == late.hash
    # Exactly clock + 2 hours is still fine.
    edge = h.block(time=t[0] + MAX_FUTURE_SECONDS)
    assert h.chain.process_block(edge).status == "connected"


def test_child_of_a_too_new_block_waits_as_orphan_until_the_clock_catches_up():
    t = [NOW]
    h = Harness(clock=lambda: t[0])
    source = Harness(clock=lambda: NOW + 3600)
    h.mine_empty(2)
    source.mine_empty(2)
    late = source.block(time=NOW + MAX_FUTURE_SECONDS + 10)
    assert source.chain.process_block(late).status == "connected"
    child = source.block(time=NOW + MAX_FUTURE_SECONDS + 11)
    assert source.chain.process_block(child).status == "connected"

    assert h.chain.process_block(late).error.code == "time-too-new"
    out = h.chain.process_block(child)
    assert out.status == "orphan" and out.error.code == "prev-blk-not-found"
    t[0] += 11
    out = h.chain.process_block(late)
    assert out.status == "connected" and out.connected == [late, child]
    assert h.tip.hash == child.hash


def five_mined_blocks():
    """Another node's chain (a Harness) and its five blocks after genesis."""
    source = Harness()
    blocks = []
    for i in range(5):
        blocks.append(source.block(reward_to=NAMES[i % 4]))
        assert source.chain.process_block(blocks[-1]).status == "connected"
    return source, blocks


# -- orphans ---------------------------------------------------------------------------

def test_orphans_delivered_in_reverse_connect_when_the_first_arrives():
    source, blocks = five_mined_blocks()

    h = Harness()
    for block in reversed(blocks[1:]):
        out = h.chain.process_block(block)
        assert out.status == "orphan"
        assert out.error.code == "prev-blk-not-found" and out.error.kind == "orphan"
        assert block.hash in h.chain.orphans
        assert block.hash not in h.chain.index
        assert h.chain.invalid_reason(block.hash) is None
        assert h.chain.height == 0
    assert h.chain.process_block(blocks[2]).status == "orphan"  # again: still waiting
    assert len(h.chain.orphans) == 4

    out = h.chain.process_block(blocks[0])
    assert out.status == "connected"
    assert out.connected == blocks
    assert out.disconnected == []
    assert h.tip.hash == blocks[-1].hash and h.chain.height == 5
    assert len(h.chain.orphans) == 0
    assert_consistent(h.chain)
    assert h.chain.store.all_coins() == source.chain.store.all_coins()


def test_orphans_completing_a_better_branch_cause_a_reorg():
    h, source = Harness(), Harness()
    h.mine_empty(3)
    source.mine_empty(3)  # the same blocks: both chains share them
    assert source.tip.hash == h.tip.hash
    a = h.mine_empty(2, reward_to="alice")
    b = source.mine_empty(3, reward_to="bob")
    for block in (b[2], b[1]):
        assert h.chain.process_block(block).status == "orphan"
    out = h.chain.process_block(b[0])
    assert out.status == "connected"  # the block itself ends up on the active chain
    assert out.disconnected == [a[1], a[0]]
    assert out.connected == b
    assert h.tip.hash == b[2].hash and not h.chain.orphans
    assert h.chain.store.all_coins() == source.chain.store.all_coins()
    assert_consistent(h.chain)


def test_a_parent_that_reorgs_then_its_orphan_report_every_block_moved():
    """b2 makes b's branch the best (a1 disconnected, b1 and b2 connected),
    then the orphan b3 waiting for it extends it: the outcome lists all."""
    h, source = Harness(), Harness()
    h.mine_empty(3)
    source.mine_empty(3)
    a1 = h.mine_empty(1)[0]
    b = source.mine_empty(3, reward_to="bob")
    assert h.chain.process_block(b[0]).status == "side"
    assert h.chain.process_block(b[2]).status == "orphan"
    out = h.chain.process_block(b[1])
    assert (out.status, out.disconnected, out.connected) == ("connected", [a1], b)
    assert h.tip.hash == b[2].hash and not h.chain.orphans


def test_orphans_wait_for_their_parents_valid_body():
    """An orphan is processed once its parent's body is stored. A parent that
    only left its header (unrequested, less work) or was found invalid
    releases nothing: its orphans stay in the pool (as in Core)."""
    h, source = Harness(), Harness()
    h.mine_empty(1)
    source.mine_empty(1)
    h.mine_empty(3)
    weak = source.mine_empty(2, reward_to="bob")  # heights 2, 3: less work than our 4
    assert h.chain.process_block(weak[1]).status == "orphan"
    assert h.chain.process_block(weak[0], requested=False).status == "unrequested"
    assert weak[1].hash in h.chain.orphans  # the header alone released nothing
    out = h.chain.process_block(weak[0])  # asked for now: stored, its orphan goes
    assert (out.status, out.connected) == ("side", [])
    assert weak[1].hash not in h.chain.orphans
    assert h.chain.index[weak[1].hash].status & HAVE_DATA

    nothing = (OutPoint(bytes(32), 0), Coin(COIN, owner("alice"), 0, False))
    bad = source.block([spend([nothing], "alice", [("bob", COIN)])])  # stored, fails to connect
    child = source.block(parent=source.chain.accept_header(bad.header), reward_to="mallory")
    h = Harness()
    h.mine_empty(1)
    for block in weak:
        assert h.chain.process_block(block).status == "connected"
    assert h.chain.process_block(child).status == "orphan"
    out = h.chain.process_block(bad)
    assert out.status == "invalid" and out.error.code == "bad-txns-inputs-missingorspent"
    assert h.chain.index[bad.hash].status == HAVE_DATA | FAILED
    assert child.hash in h.chain.orphans and child.hash not in h.chain.index


def test_orphan_pool_is_bounded_and_evicts_oldest_first():
    source = Harness()
    parent = source.block()
    assert source.chain.process_block(parent).status == "connected"
    count = MAX_ORPHAN_BLOCKS + 5
    children = [source.block(coinbase_outputs=[TxOut(SUBSIDY - i, owner("bob"))])
                for i in range(count)]
    assert len({c.hash for c in children}) == count

    h = Harness()
    for child in children:
        assert h.chain.process_block(child).status == "orphan"
        assert len(h.chain.orphans) <= MAX_ORPHAN_BLOCKS
    assert len(h.chain.orphans) == MAX_ORPHAN_BLOCKS
    assert list(h.chain.orphans) == [c.hash for c in children[5:]]

    out = h.chain.process_block(parent)
    assert out.status == "connected"
    assert out.connected == [parent, children[5]]  # the oldest surviving orphan came first
    assert h.tip.hash == children[5].hash
    assert len(h.chain.orphans) == 0
    assert all(h.chain.index[c.hash].status & HAVE_DATA for c in children[5:])
    # An evicted one is simply a side block now that its parent is known.
    assert children[0].hash not in h.chain.index
    assert h.chain.process_block(children[0]).status == "side"
    assert h.tip.hash == children[5].hash
    assert_consistent(h.chain)


# -- headers first -------------------------------------------------------------------------

def test_headers_first_then_bodies_out_of_order():
    source, blocks = five_mined_blocks()

    h = Harness()
    chain = h.chain
    with pytest.raises(RuleError) as caught:
        chain.accept_header(blocks[1].header)
    assert caught.value.code == "prev-blk-not-found"
    assert blocks[1].hash not in chain.index
    bad_pow = without_work(blocks[0].header)
    with pytest.raises(RuleError) as caught:
        chain.accept_header(bad_pow)
    assert caught.value.code == "high-hash"
    assert bad_pow.hash not in chain.index and chain.invalid_reason(bad_pow.hash) is None

    entries = [chain.accept_header(b.header) for b in blocks]
    assert [e.height for e in entries] == [1, 2, 3, 4, 5]
    assert [e.hash for e in entries] == [b.hash for b in blocks]
    assert chain.accept_header(blocks[2].header) is entries[2]  # idempotent
    assert all(not e.status & HAVE_DATA for e in entries)
    assert chain.height == 0 and chain.tip.hash == REGTEST.genesis.hash

    expectations = [  # (block index, status, tip height after, connected indexes)
        (2, "side", 0, []),
        (4, "side", 0, []),
        (0, "connected", 1, [0]),
        (3, "side", 1, []),
        (1, "connected", 5, [1, 2, 3, 4]),
    ]
    for index, status, tip_height, connected in expectations:
        out = chain.process_block(blocks[index])
        assert out.status == status, (index, out)
        assert chain.height == tip_height
        assert chain.tip.hash == chain.entry_at(tip_height).hash
        assert out.connected == [blocks[i] for i in connected]
        assert out.disconnected == []
        assert_consistent(chain)
    assert chain.tip.hash == blocks[4].hash
    assert chain.store.all_coins() == source.chain.store.all_coins()


# -- persistence ------------------------------------------------------------------------------

def test_reopen_restores_tip_heights_coins_stats_and_statuses(tmp_path):
    path = tmp_path / "chain.sqlite"
    h = Harness(store=Store(path))
    chain = h.chain
    h.mine_empty(10)
    tx1, tx2, fees = two_spends(h)
    assert h.mine([tx1, tx2], fees=fees).status == "connected"
    a1, a2, b1, b2, b3 = _branch_with_invalid_middle(h)
    chain.process_block(b3)
    side = h.block(parent=chain.entry_at(11), reward_to="bob")
    assert chain.process_block(side).status == "side"
    assert chain.tip.hash == a2.hash and chain.height == 13
    assert chain.invalid_reason(b2.hash) == "bad-txns-in-belowout"

    txids = [tx1.txid, tx2.txid] + [b.txs[0].txid for b in active_blocks(chain)]
    before = state_of(chain, txids)
    statuses = index_statuses(chain)
    assert statuses[b2.hash][1] & FAILED and statuses[b3.hash][2] == "bad-prevblk"
    tip = chain.tip.hash
    chain.close()

    # On disk, before anything re-validates: the failures are recorded.
    raw = Store(path)
    try:
        rows = {Header.decode(r[0]).hash: (r[1], r[2], r[3], r[4]) for r in raw.load_index()}
    finally:
        raw.close()
    assert rows == {h: (height, status, seq, reason)
                    for h, (height, status, reason, seq, _, _) in statuses.items()}
    assert rows[b2.hash][1] & FAILED and rows[b2.hash][3] == "bad-txns-in-belowout"
    assert rows[b3.hash][1] & FAILED and rows[b3.hash][3] == "bad-prevblk"

    reopened = ChainState(REGTEST, Store(path), clock=lambda: NOW)
    try:
        assert reopened.tip.hash == tip and reopened.height == 13
        assert [e.height for e in reopened.active] == list(range(14))
        assert state_of(reopened, txids) == before
        assert index_statuses(reopened) == statuses
        assert reopened.invalid_reason(b2.hash) == "bad-txns-in-belowout"
        assert reopened.invalid_reason(b3.hash) == "bad-prevblk"
        assert reopened.invalid_reason(b1.hash) is None
        out = reopened.process_block(b2)
        assert out.status == "duplicate-invalid" and out.error.code == "bad-txns-in-belowout"
        assert reopened.process_block(b3).status == "duplicate-invalid"
        assert reopened.process_block(a2).status == "duplicate"
        assert reopened.find_tx(tx2.txid)[1].height == 11
        assert_consistent(reopened)

        # The side branch survived too: extending it past the tip reorgs.
        h.chain = reopened
        s2 = h.block(parent=reopened.index[side.hash], reward_to="bob")
        assert reopened.process_block(s2).status == "side"  # ties with a2, seen later
        s3 = h.block(parent=reopened.index[s2.hash], reward_to="bob")
        out = reopened.process_block(s3)
        assert out.status == "connected"
        assert out.disconnected == [a2, a1] and out.connected == [side, s2, s3]
        assert_consistent(reopened)
    finally:
        reopened.close()


# -- crash atomicity --------------------------------------------------------------------------

@pytest.mark.parametrize("fail_at", range(1, 9))
def test_crash_while_connecting_leaves_previous_state(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "chain.sqlite"
    h = Harness(store=Store(path))
    chain, store = h.chain, h.chain.store
    mined = h.mine_empty(10)
    tx1, tx2, fees = two_spends(h)
    block = h.block([tx1, tx2], fees=fees)
    txids = [tx.txid for tx in block.txs]
    before = state_of(chain, txids)
    old_tip = chain.tip

    calls = inject_fault(monkeypatch, store, fail_at)
    with pytest.raises(InjectedFault):
        chain.process_block(block)
    assert calls["n"] == 1
    assert calls["statements_run"] == min(fail_at, 7)  # a connect runs 7 statements

    assert state_of(chain, txids) == before
    assert store.get_undo(block.hash) is None
    assert chain.tip is old_tip and chain.height == 10
    assert [e.hash for e in chain.active] == before["active"]

    # What another process would read from the file right now: the previous tip.
    other = Store(path)
    try:
        assert other.get_meta("tip") == old_tip.hash
        assert other.active_hashes() == before["active"]
        assert other.all_coins() == before["coins"]
        assert other.utxo_stats() == before["stats"]
        assert all(other.tx_location(t) is None for t in txids)
    finally:
        other.close()

    # Reopening the node: the block's body was stored, so (protocol notes,
    # "Durability") it resumes and connects it, as if nothing had happened.
    monkeypatch.undo()
    chain.close()
    reopened = ChainState(REGTEST, Store(path), clock=lambda: NOW)
    try:
        assert reopened.tip.hash == block.hash
        reference = Harness()
        for b in mined + [block]:
            assert reference.chain.process_block(b).status == "connected"
        assert state_of(reopened, txids) == state_of(reference.chain, txids)
        assert_consistent(reopened)
    finally:
        reopened.close()


def test_in_memory_chain_recovers_after_failed_write(mature, monkeypatch):
    h = mature
    chain = h.chain
    tx1, tx2, fees = two_spends(h)
    block = h.block([tx1, tx2], fees=fees)
    inject_fault(monkeypatch, chain.store, fail_at=5)
    with pytest.raises(InjectedFault):
        chain.process_block(block)
    monkeypatch.undo()
    assert chain.height == 10
    assert_consistent(chain)
    child = h.block(parent=chain.index[block.hash], reward_to="bob")
    out = chain.process_block(child)
    assert out.status == "connected"
    assert out.connected == [block, child]
    assert chain.store.tx_location(tx2.txid) == (11, 2)
    assert_consistent(chain)


@pytest.mark.parametrize("on_call", [1, 2, 3])
@pytest.mark.parametrize("fail_at", [2, 4, 7])
def test_crash_during_reorg_keeps_memory_and_disk_in_step(tmp_path, monkeypatch, on_call, fail_at):
    """apply_block calls of the reorg: 1 disconnects a1, 2 connects b1, 3 connects b2."""
    path = tmp_path / "chain.sqlite"
    h = Harness(store=Store(path))
    chain, store = h.chain, h.chain.store
    h.mine_empty(10)
    fork = h.tip
    tx1, tx2, fees = two_spends(h)
    a1 = h.block([tx1, tx2], fees=fees)
    assert chain.process_block(a1).status == "connected"
    b1 = h.block(parent=fork, reward_to="carol")
    assert chain.process_block(b1).status == "side"
    b2 = h.block(parent=chain.index[b1.hash], reward_to="carol")
    before = state_of(chain, [tx1.txid, tx2.txid])
    expected_tip = {1: a1.hash, 2: fork.hash, 3: b1.hash}[on_call]

    inject_fault(monkeypatch, store, fail_at, on_call=on_call)
    with pytest.raises(InjectedFault):
        chain.process_block(b2)
    monkeypatch.undo()
    assert chain.tip.hash == expected_tip
    assert store.get_meta("tip") == expected_tip
    assert_consistent(chain)
    if on_call == 1:
        assert state_of(chain, [tx1.txid, tx2.txid]) == before

    chain.close()
    reopened = ChainState(REGTEST, Store(path), clock=lambda: NOW)
    try:
        assert reopened.tip.hash == b2.hash  # resumes the interrupted reorg
        assert reopened.store.tx_location(tx1.txid) is None
        assert_consistent(reopened)
    finally:
        reopened.close()


# -- locators -----------------------------------------------------------------------------

def test_locator_find_fork_and_headers_after():
    h = Harness()
    assert h.chain.locator() == [REGTEST.genesis.hash]
    h.mine_empty(5)
    assert h.chain.locator() == [h.chain.entry_at(k).hash for k in (5, 4, 3, 2, 1, 0)]
    h.mine_empty(20)  # height 25
    chain = h.chain
    locator = chain.locator()
    heights = [chain.index[x].height for x in locator]
    assert heights[:10] == list(range(25, 15, -1))  # the last 10
    gaps = [a - b for a, b in zip(heights[9:-1], heights[10:-1])]
    assert gaps == [2 ** k for k in range(1, len(gaps) + 1)]  # then doubling steps
    assert heights[-1] == 0 and len(set(locator)) == len(locator)
    assert all(chain.is_active(chain.index[x]) for x in locator)

    # A peer that shares our first 10 blocks and then forked.
    peer = Harness()
    peer.mine_empty(10)
    peer.mine_empty(5, reward_to="bob")
    assert peer.chain.entry_at(10).hash == chain.entry_at(10).hash
    assert peer.chain.entry_at(11).hash != chain.entry_at(11).hash
    fork = chain.find_fork(peer.chain.locator())
    assert fork is chain.entry_at(10)
    headers = chain.headers_after(peer.chain.locator(), None, MAX_HEADERS)
    assert [x.hash for x in headers] == [chain.entry_at(k).hash for k in range(11, 26)]
    stop = chain.entry_at(13).hash
    assert [x.hash for x in chain.headers_after(peer.chain.locator(), stop, MAX_HEADERS)] == [
        chain.entry_at(k).hash for k in (11, 12, 13)]
    assert [x.hash for x in chain.headers_after(peer.chain.locator(), None, limit=3)] == [
        chain.entry_at(k).hash for k in (11, 12, 13)]
    assert chain.find_fork([bytes(32), b"\x01" * 32]) is chain.entry_at(0)
    assert len(chain.headers_after([b"\x01" * 32], None, MAX_HEADERS)) == 25
    assert chain.find_fork(locator) is chain.tip
    assert chain.headers_after(locator, None, MAX_HEADERS) == []
    # A side-branch hash is not "on our chain": skipped in favour of the next.
    side = h.block(parent=chain.entry_at(20), reward_to="dave")
    assert chain.process_block(side).status == "side"
    assert chain.find_fork([side.hash, chain.entry_at(7).hash]) is chain.entry_at(7)
    # Headers after a fork point are the ones that link to it.
    headers = chain.headers_after([chain.entry_at(7).hash], None, MAX_HEADERS)
    assert headers[0].prev_hash == chain.entry_at(7).hash
    assert all(b.prev_hash == a.hash for a, b in zip(headers, headers[1:]))


# -- connect then disconnect -----------------------------------------------------------------

def test_connect_then_disconnect_is_identity(mature):
    h = mature
    chain, store = h.chain, h.chain.store
    parent = h.tip
    tx1, tx2, fees = two_spends(h)
    cb1 = chain.get_block(chain.entry_at(1).hash).txs[0]
    tx3 = spend([coin_of(cb1, 0, 1), coin_of(tx2, 1, 11)], ["alice", "bob"],
                [("dave", 30 * COIN), ("alice", 24 * COIN)])  # fee 0.5 TOY
    fees += COIN // 2
    names = ("alice", "bob", "carol")
    before = {
        "coins": store.all_coins(),
        "stats": store.utxo_stats(),
        "history": {n: store.history_of(owner(n)) for n in names},
        "txindex": {t.txid: store.tx_location(t.txid) for t in (tx1, tx2, tx3)},
    }
    block = h.block([tx1, tx2, tx3], fees=fees, reward_to="carol")
    out = chain.process_block(block)
    assert out.status == "connected", out
    assert store.get_coin(OutPoint(tx1.txid, 0)) is None  # created and spent in the block
    assert store.get_coin(OutPoint(tx2.txid, 1)) is None
    assert store.get_coin(OutPoint(tx2.txid, 0)) == coin_of(tx2, 0, 11)[1]
    assert store.utxo_stats() == (before["stats"][0] + 1 + 1 + 1 + 0, before["stats"][1] + SUBSIDY)
    assert store.history_of(owner("bob")) == [(tx1.txid, 11, 1, 20 * COIN),
                                              (tx2.txid, 11, 2, 45 * COIN // 10 - 20 * COIN),
                                              (tx3.txid, 11, 3, -45 * COIN // 10)]
    assert_consistent(chain)

    # Force a reorg away: two blocks on the parent, paying dave.
    y1 = h.block(parent=parent, reward_to="dave")
    assert chain.process_block(y1).status == "side"
    y2 = h.block(parent=chain.index[y1.hash], reward_to="dave")
    out = chain.process_block(y2)
    assert out.disconnected == [block] and out.connected == [y1, y2]

    new_coins = dict([coin_of(y1.txs[0], 0, 11), coin_of(y2.txs[0], 0, 12)])
    assert store.all_coins() == {**before["coins"], **new_coins}
    assert store.utxo_stats() == (before["stats"][0] + 2, before["stats"][1] + 2 * SUBSIDY)
    assert {n: store.history_of(owner(n)) for n in names} == before["history"]
    assert {t.txid: store.tx_location(t.txid) for t in (tx1, tx2, tx3)} == before["txindex"]
    assert store.get_undo(block.hash) is None
    assert [c for _, c in store.coins_of(owner("dave"))] == [
        Coin(SUBSIDY, owner("dave"), 11, True), Coin(SUBSIDY, owner("dave"), 12, True)]
    assert_consistent(chain)


def test_no_garbage_collection_while_a_block_is_processed(monkeypatch):
    """chain/chainstate.py pauses the cyclic collector around process_block
    (its objects are freed by reference counting) and resumes it after; a
    collector the caller had disabled stays disabled."""
    import gc
    h = Harness()
    collections = []
    during = []
    real = h.chain._process_block

    def watched(*args):
        before = len(collections)
        outcome = real(*args)
        during.append((gc.isenabled(), len(collections) - before))
        return outcome
    monkeypatch.setattr(h.chain, "_process_block", watched)
    callback = lambda phase, info: collections.append(phase)  # noqa: E731
    threshold = gc.get_threshold()
    gc.set_threshold(1)  # a collection at every allocation, unless paused
    gc.callbacks.append(callback)
    try:
        assert h.chain.process_block(h.block()).status == "connected"
        assert during == [(False, 0)] and gc.isenabled()
        assert collections  # the threshold works: the test would see a collection
        gc.disable()
        assert h.chain.process_block(h.block()).status == "connected"
        assert not gc.isenabled() and during == [(False, 0), (False, 0)]
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*threshold)
        gc.enable()


def test_no_garbage_collection_while_a_block_is_decoded(monkeypatch):
    """Block.decode pauses the collector too (chain/gcpause.py), and resumes it."""
    import gc
    raw = Harness().block().raw
    collections = []
    during = []
    real = Block._decode.__func__

    def watched(cls, data):
        before = len(collections)
        block = real(cls, data)
        during.append((gc.isenabled(), len(collections) - before))
        return block
    monkeypatch.setattr(Block, "_decode", classmethod(watched))
    callback = lambda phase, info: collections.append(phase)  # noqa: E731
    threshold = gc.get_threshold()
    gc.set_threshold(1)
    gc.callbacks.append(callback)
    try:
        assert Block.decode(raw).raw == raw
        assert during == [(False, 0)] and gc.isenabled()
        garbage = [[] for _ in range(3)]
        assert garbage and collections  # the threshold works: the test would see one
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*threshold)
        gc.enable()
