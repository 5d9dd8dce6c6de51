"""Memory never runs ahead of SQLite (chain/chainstate.py, chain/storage.py).

Each scenario runs one operation of the chain state (accepting a header,
storing and connecting a block, a reorg, finding a block invalid, with
bodies waiting on it too, a body completing a chain, forgetting side
entries, a waiting body or a candidate among them, creating the file) once without a
failure, its memory then equal to a fresh reopen, and again while every
SQL statement it writes fails in turn, with the error a full disk or
a locked database raises (``sqlite3.OperationalError``). After each failure:

* the error reached the caller;
* memory is what is on disk: index rows (height, status, seq, reason),
  active chain and tip, and every coin (or miss) the coin cache holds;
* memory equals a fresh reopen of the file (a copy of it, so that the reopen
  cannot write under the chain state being checked): tip, active chain,
  index statuses and links, candidates, side and waiting entries, coins.
  When the failure cut a reorg short (a better candidate than the tip is
  stored), the reopen resumes it; the chain state then equals the reopen
  once the same block is submitted again;
* with the failure removed, submitting the same block (header) again ends
  in exactly the state a run without any failure reaches.
"""

import sqlite3

import pytest

from chain import chainstate
from chain.amounts import COIN
from chain.block import Header
from chain.chainstate import ChainState
from chain.params import REGTEST
from chain.storage import Store
from chain.coins import Coin
from chain.tx import OutPoint, Tx

from .helpers import NOW, Harness, StatementFaults, assert_coin_cache_is_the_disk, spend

DISK_FULL = sqlite3.OperationalError("database or disk is full")


def snapshot(chain: ChainState) -> dict:
    store = chain.store
    return {
        "tip": chain.tip.hash,
        "active": [e.hash for e in chain.active],
        "index": {h: (e.height, e.status, e.seq, e.reason, e.chain_complete,
                      e.parent.hash if e.parent else None, set(e.children))
                  for h, e in chain.index.items()},
        "candidates": {e.hash for e in chain._candidates},
        "waiting": {p: set(w) for p, w in chain._unlinked.items()},
        "side": {e.hash for e in chain._side},
        "disk": {"active": store.active_hashes(), "tip": store.get_meta("tip"),
                 "coins": store.all_coins(), "stats": store.utxo_stats(),
                 "rows": sorted(store.load_index())},
    }


def assert_memory_is_the_disk(chain: ChainState) -> None:
    rows = {Header.decode(r[0]).hash: tuple(r[1:]) for r in chain.store.load_index()}
    assert rows == {h: (e.height, e.status, e.seq, e.reason) for h, e in chain.index.items()}
    assert [e.hash for e in chain.active] == chain.store.active_hashes()
    assert chain.store.get_meta("tip") == chain.tip.hash
    assert_coin_cache_is_the_disk(chain)


def reopen_copy(chain: ChainState, path) -> ChainState:
    """A chain state opened on a copy of ``chain``'s file, as a restart would."""
    target = sqlite3.connect(path)
    chain.store.db.backup(target)
    target.close()
    return ChainState(REGTEST, Store(path), clock=lambda: NOW)


def coin_of(tx, index, height):
    out = tx.outputs[index]
    return OutPoint(tx.txid, index), Coin(out.amount, out.owner, height, tx.is_coinbase)


# -- scenarios: each prepares a chain and returns the operation under test -----------------

def new_header(h: Harness):
    h.mine_empty(3)
    block = h.block()
    return lambda: h.chain.accept_header(block.header)


def new_block_with_txs(h: Harness):
    h.mine_empty(10)
    genesis_coin = coin_of(REGTEST.genesis.txs[0], 0, 0)
    tx1 = spend([genesis_coin], "alice", [("bob", 20 * COIN), ("alice", 29 * COIN)])
    tx2 = spend([coin_of(tx1, 0, 11)], "bob", [("carol", 15 * COIN), ("bob", 45 * COIN // 10)])
    block = h.block([tx1, tx2], fees=COIN + COIN // 2)
    return lambda: h.chain.process_block(block)


def bad_signature_rolls_the_write_back(h: Harness):
    """A block whose second tx carries another tx's signature: the block's
    write runs, the signature verdict (awaited before COMMIT) fails, the
    write is rolled back, and the block is marked invalid."""
    h.mine_empty(10)
    genesis_coin = coin_of(REGTEST.genesis.txs[0], 0, 0)
    tx1 = spend([genesis_coin], "alice", [("bob", 20 * COIN), ("alice", 29 * COIN)])
    tx2 = spend([coin_of(tx1, 0, 11)], "bob", [("carol", 15 * COIN)])
    bad = Tx(tx2.version, (tx2.inputs[0]._replace(signature=tx1.inputs[0].signature),),
             tx2.outputs, tx2.locktime)
    block = h.block([tx1, bad], fees=6 * COIN)

    def act():
        outcome = h.chain.process_block(block)  # "duplicate-invalid" if a first try marked it
        assert outcome.status in ("invalid", "duplicate-invalid")
        assert outcome.error.code == "bad-txns-bad-signature"
        assert h.chain.get_coin(OutPoint(tx1.txid, 1)) is None  # tx1's write was rolled back
        assert h.chain.get_coin(genesis_coin[0]) == genesis_coin[1]
        assert_coin_cache_is_the_disk(h.chain)
    return act


def reorg(h: Harness):
    """a1 active, b1 stored on the side; b2 makes b's branch win: disconnect
    a1, connect b1 and b2."""
    chain = h.chain
    h.mine_empty(10)
    fork = h.tip
    genesis_coin = coin_of(REGTEST.genesis.txs[0], 0, 0)
    tx = spend([genesis_coin], "alice", [("bob", 49 * COIN)])
    assert chain.process_block(h.block([tx], fees=COIN)).status == "connected"
    b1 = h.block(parent=fork, reward_to="carol")
    assert chain.process_block(b1).status == "side"
    b2 = h.block(parent=chain.index[b1.hash], reward_to="carol")
    return lambda: chain.process_block(b2)


def invalid_block_found_in_a_reorg(h: Harness):
    """Branch b1, b2 (an overspend), b3 passes a1, a2 in work: the reorg
    connects b1, finds b2 invalid, marks b2 and b3, and returns to a2."""
    chain = h.chain
    h.mine_empty(10)
    fork = h.tip
    for _ in range(2):
        assert chain.process_block(h.block(reward_to="dave")).status == "connected"
    b1 = h.block(parent=fork, reward_to="carol")
    assert chain.process_block(b1).status == "side"
    cb2 = chain.get_block(chain.entry_at(2).hash).txs[0]
    overspend = spend([coin_of(cb2, 0, 2)], "alice", [("bob", 50 * COIN + 1)])
    b2 = h.block([overspend], parent=chain.index[b1.hash], reward_to="carol")
    assert chain.process_block(b2).status == "side"
    b3 = h.block(parent=chain.index[b2.hash], reward_to="carol")
    return lambda: chain.process_block(b3)


def invalid_in_context(h: Harness):
    """A block forking at height 1 whose coinbase names height 2: it gets an
    index entry, then is marked invalid (bad-cb-height)."""
    h.mine_empty(5)
    genesis = h.chain.index[REGTEST.genesis.hash]
    bad = h.block(parent=genesis, height=2, reward_to="mallory")
    return lambda: h.chain.process_block(bad)


def body_completing_a_chain(h: Harness):
    """Headers of x1..x3 known, bodies of x2 and x3 stored (waiting): x1's
    body completes the chain (three sequence numbers) and connects all three."""
    chain = h.chain
    h.mine_empty(2)
    blocks = []
    for _ in range(3):
        block = h.block(parent=chain.index[blocks[-1].hash] if blocks else None, reward_to="bob")
        chain.accept_header(block.header)
        blocks.append(block)
    for block in blocks[1:]:
        assert chain.process_block(block).status == "side"
    return lambda: chain.process_block(blocks[0])


def bodies_waiting_on_an_invalid_block(h: Harness):
    """Headers of x1..x3, x1's coinbase naming height 2; bodies of x3 and x2
    stored, waiting for x1's. x1's body fails (bad-cb-height): x2 and x3
    are marked bad-prevblk and wait for nothing any more."""
    chain = h.chain
    h.mine_empty(2)
    x1 = h.block(height=h.tip.height + 2, reward_to="mallory")
    blocks = [x1]
    chain.accept_header(x1.header)
    for _ in range(2):
        block = h.block(parent=chain.index[blocks[-1].hash], reward_to="mallory")
        chain.accept_header(block.header)
        blocks.append(block)
    for block in reversed(blocks[1:]):
        assert chain.process_block(block).status == "side"
    assert chain._unlinked  # x2 waits for x1, x3 for x2
    return lambda: chain.process_block(x1)


def forgetting_side_entries(h: Harness):
    """With room for two side entries, a third header forgets one."""
    h.mine_empty(2)
    for name in ("bob", "carol"):
        h.chain.accept_header(h.block(reward_to=name).header)
    third = h.block(reward_to="dave")
    return lambda: h.chain.accept_header(third.header)


def forgetting_a_waiting_body(h: Harness):
    """With room for two side entries: the header of p, then the bodies of
    its children c1 and c2 (both waiting for p's body). Storing c2 passes the
    bound: c2, the newest of the least-work side leaves, is forgotten, and c1
    still waits for p."""
    chain = h.chain
    h.mine_empty(2)
    p = h.block(reward_to="bob")
    parent = chain.accept_header(p.header)
    c1, c2 = (h.block(parent=parent, reward_to=name) for name in ("carol", "dave"))
    assert chain.process_block(c1).status == "side"
    return lambda: chain.process_block(c2)


def forgetting_a_candidate(h: Harness):
    """With room for one side entry: the header of a block after our tip,
    then a stored sibling of the tip (as much work: a candidate). The
    sibling is the side leaf with the least work: it is forgotten, as a
    candidate too."""
    chain = h.chain
    h.mine_empty(2)
    chain.accept_header(h.block(reward_to="bob").header)
    sibling = h.block(parent=chain.entry_at(1), reward_to="carol")
    return lambda: chain.process_block(sibling)


SCENARIOS = [new_header, new_block_with_txs, bad_signature_rolls_the_write_back, reorg, invalid_block_found_in_a_reorg,
             invalid_in_context, body_completing_a_chain, bodies_waiting_on_an_invalid_block,
             forgetting_side_entries, forgetting_a_waiting_body, forgetting_a_candidate]
ROOM_FOR = {forgetting_side_entries: 2, forgetting_a_waiting_body: 2, forgetting_a_candidate: 1}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_a_failed_write_leaves_memory_equal_to_the_file(tmp_path, monkeypatch, scenario):
    if scenario in ROOM_FOR:  # side entries
        monkeypatch.setattr(chainstate, "MAX_SIDE_ENTRIES", ROOM_FOR[scenario])
    reference = Harness(store=Store(tmp_path / "reference.sqlite"))
    act = scenario(reference)
    counter = StatementFaults(reference.chain.store)
    act()
    counter.remove()
    expected, total = snapshot(reference.chain), counter.statements
    assert total >= 1
    reopened = reopen_copy(reference.chain, tmp_path / "reference-reopened.sqlite")
    assert snapshot(reopened) == expected  # without failures too, memory is the file
    reopened.close()
    reference.chain.close()

    for fail_at in range(1, total + 1):
        h = Harness(store=Store(tmp_path / f"{fail_at}.sqlite"))
        act = scenario(h)
        chain = h.chain
        faults = StatementFaults(chain.store, fail_at, DISK_FULL)
        with pytest.raises(sqlite3.OperationalError):
            act()
        faults.remove()
        where = f"failure at statement {fail_at} of {total}"
        assert_memory_is_the_disk(chain)

        reopened = reopen_copy(chain, tmp_path / f"{fail_at}-reopened.sqlite")
        cut_short = chain._best_candidate() is not chain.tip  # a reorg the reopen resumes
        if not cut_short:
            assert snapshot(chain) == snapshot(reopened), where
        act()  # the same block (or header) again, the failure gone
        assert snapshot(chain) == expected, where
        if cut_short:
            assert snapshot(chain) == snapshot(reopened), where
        reopened.close()
        chain.close()


def test_creating_the_file_is_one_transaction(tmp_path):
    """The network, the genesis header and body, and genesis connected: a
    failure at any of these statements leaves a file that opens as new."""
    counter_store = Store(tmp_path / "count.sqlite")
    counter = StatementFaults(counter_store)
    expected = snapshot(ChainState(REGTEST, counter_store, clock=lambda: NOW))
    total = counter.statements
    assert total >= 4

    for fail_at in range(1, total + 1):
        path = tmp_path / f"{fail_at}.sqlite"
        store = Store(path)
        StatementFaults(store, fail_at, DISK_FULL)
        with pytest.raises(sqlite3.OperationalError):
            ChainState(REGTEST, store, clock=lambda: NOW)
        assert store.load_index() == [] and store.active_hashes() == []
        assert store.get_meta("network") is None
        store.close()
        reopened = ChainState(REGTEST, Store(path), clock=lambda: NOW)
        assert snapshot(reopened) == expected, f"failure at statement {fail_at}"
        assert reopened.store.get_meta("network") == "regtest"
        reopened.close()


def test_a_first_start_cut_short_by_an_older_version_opens(tmp_path):
    """Older versions wrote the genesis header, then its body, then connected
    it, in three transactions: a file holding only the header opens."""
    path = tmp_path / "chain.sqlite"
    store = Store(path)
    genesis = REGTEST.genesis
    store.put_index_entry(genesis.hash, genesis.header.raw, 0)
    store.close()
    reopened = ChainState(REGTEST, Store(path), clock=lambda: NOW)
    assert snapshot(reopened) == snapshot(ChainState(REGTEST, Store(), clock=lambda: NOW))
    assert reopened.store.utxo_stats() == (1, genesis.txs[0].outputs[0].amount)
    reopened.close()
