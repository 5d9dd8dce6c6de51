"""The coin cache in front of SQLite (chain/utxocache.py).

It holds at most ``MAX_CACHED_COINS`` entries and ``MAX_COIN_CACHE_BYTES``
of memory, filled past the bound; it gets the coins connected blocks make,
loses the coins they spend, and follows reorgs; a remembered miss turns into
the coin when a block makes it; a failed connect (a statement, a signature,
the COMMIT) leaves it as the committed state says (a failing signature:
tests/test_chainstate_atomic.py); a restart starts empty.
Random programs of connects, reorgs and lookups are in
tests/test_properties.py (its invariant compares every answer with SQLite's).
"""

import os
import sqlite3
import tracemalloc

import pytest

from chain import utxocache
from chain.amounts import COIN, MAX_MONEY
from chain.chainstate import ChainState
from chain.coins import Coin
from chain.params import REGTEST
from chain.storage import Store
from chain.tx import OutPoint, Tx
from chain.utxocache import MAX_CACHED_COINS, MAX_COIN_CACHE_BYTES, UtxoCache

from .helpers import NOW, Harness, StatementFaults, assert_coin_cache_is_the_disk, spend

DISK_FULL = sqlite3.OperationalError("database or disk is full")


def coin_of(tx: Tx, index: int, height: int) -> tuple[OutPoint, Coin]:
    out = tx.outputs[index]
    return OutPoint(tx.txid, index), Coin(out.amount, out.owner, height, tx.is_coinbase)


def cached(chain: ChainState, outpoint: OutPoint) -> bool:
    return outpoint in chain.coins._coins


def worst_case_entry(n: int) -> tuple[OutPoint, Coin]:
    """An entry as large as any can be: fresh bytes, the largest ints."""
    return (OutPoint(os.urandom(32), 2**32 - 1 - n),
            Coin(MAX_MONEY - n, os.urandom(20), 2**32 - 1 - n, True))


def test_the_cache_holds_its_bound_in_count_and_bytes_when_filled_past_it():
    """Twice the bound of the largest entries there can be, in blocks of
    4,000 new coins: the memory counted is everything the cache keeps alive
    (the entries are made inside the measurement, and those evicted freed)."""
    cache = UtxoCache(Store())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, 2 * MAX_CACHED_COINS, 4_000):
            cache.committed(dict(worst_case_entry(n) for n in range(start, start + 4_000)))
            assert len(cache) <= MAX_CACHED_COINS
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == MAX_CACHED_COINS
    assert held <= MAX_COIN_CACHE_BYTES, held
    newest, coin = next(reversed(cache._coins.items()))
    assert newest.index == 2**32 - 2 * MAX_CACHED_COINS  # the newest stayed
    assert cache.get_coin(newest) == coin


def test_misses_fill_the_cache_up_to_its_bound_least_recently_used_out_first(monkeypatch):
    monkeypatch.setattr(utxocache, "MAX_CACHED_COINS", 5)
    h = Harness()
    h.mine_empty(12)
    chain = h.chain
    restarted = ChainState(REGTEST, chain.store, clock=lambda: NOW)  # an empty cache
    assert len(restarted.coins) == 0
    coinbases = [coin_of(chain.get_block(e.hash).txs[0], 0, e.height) for e in chain.active]
    for outpoint, coin in coinbases[:5]:
        assert restarted.get_coin(outpoint) == coin
    assert len(restarted.coins) == 5
    restarted.get_coin(coinbases[0][0])  # used again: now the most recent
    nowhere = OutPoint(b"\x55" * 32, 7)
    assert restarted.get_coin(nowhere) is None  # a miss that finds nothing is kept too
    assert len(restarted.coins) == 5
    assert cached(restarted, coinbases[0][0]) and cached(restarted, nowhere)
    assert not cached(restarted, coinbases[1][0])  # the least recently used left
    for outpoint, coin in coinbases[5:]:
        assert restarted.get_coin(outpoint) == coin
        assert len(restarted.coins) == 5
    assert_coin_cache_is_the_disk(restarted)


def test_connected_blocks_put_made_coins_in_and_take_spent_coins_out():
    h = Harness()
    h.mine_empty(10)
    chain = h.chain
    genesis = coin_of(REGTEST.genesis.txs[0], 0, 0)
    assert cached(chain, genesis[0])  # made by a block this chain state connected
    tx = spend([genesis], "alice", [("bob", 20 * COIN), ("alice", 29 * COIN)])
    made = [coin_of(tx, i, 11) for i in range(2)]
    assert chain.get_coin(made[0][0]) is None  # not yet: a remembered miss
    assert cached(chain, made[0][0])
    assert h.mine([tx], fees=COIN).status == "connected"
    assert not cached(chain, genesis[0])  # spent: it left
    assert chain.get_coin(genesis[0]) is None
    assert all(chain.coins._coins[op] == coin for op, coin in made)  # the miss became the coin
    assert [chain.get_coin(op) for op, _ in made] == [coin for _, coin in made]
    assert_coin_cache_is_the_disk(chain)


def test_a_reorg_restores_spent_coins_and_removes_coins_of_disconnected_blocks():
    h = Harness()
    h.mine_empty(10)
    chain = h.chain
    fork = h.tip
    genesis = coin_of(REGTEST.genesis.txs[0], 0, 0)
    tx = spend([genesis], "alice", [("bob", 49 * COIN)])
    assert h.mine([tx], fees=COIN).status == "connected"
    bob = coin_of(tx, 0, 11)
    assert chain.get_coin(bob[0]) == bob[1] and chain.get_coin(genesis[0]) is None
    b1 = h.block(parent=fork, reward_to="carol")
    assert chain.process_block(b1).status == "side"
    b2 = h.block(parent=chain.index[b1.hash], reward_to="carol")
    out = chain.process_block(b2)
    assert out.status == "connected" and len(out.disconnected) == 1
    assert chain.get_coin(bob[0]) is None  # made by the disconnected block: gone
    assert chain.get_coin(genesis[0]) == genesis[1]  # restored from the undo data
    assert cached(chain, genesis[0])
    assert chain.get_coin(coin_of(b2.txs[0], 0, 12)[0]) == coin_of(b2.txs[0], 0, 12)[1]
    assert_coin_cache_is_the_disk(chain)
    # And back: the spending branch wins again (the cache remembers bob's coin missing).
    a2 = h.block(parent=chain.index[out.disconnected[0].hash], reward_to="dave")
    assert chain.process_block(a2).status == "side"
    a3 = h.block(parent=chain.index[a2.hash], reward_to="dave")
    assert chain.process_block(a3).status == "connected"
    assert chain.get_coin(bob[0]) == bob[1] and chain.get_coin(genesis[0]) is None
    assert_coin_cache_is_the_disk(chain)


def test_a_restart_starts_with_an_empty_cache(tmp_path):
    h = Harness(store=Store(tmp_path / "chain.sqlite"))
    h.mine_empty(3)
    assert len(h.chain.coins) > 0
    h.chain.close()
    reopened = ChainState(REGTEST, Store(tmp_path / "chain.sqlite"), clock=lambda: NOW)
    assert len(reopened.coins) == 0
    reopened.close()


def block_spending_genesis(h: Harness):
    """Ten blocks, then a block spending the genesis coin, with the cache
    holding the genesis coin and a remembered miss for each coin the new
    block makes."""
    h.mine_empty(10)
    genesis = coin_of(REGTEST.genesis.txs[0], 0, 0)
    tx1 = spend([genesis], "alice", [("bob", 20 * COIN), ("alice", 29 * COIN)])
    tx2 = spend([coin_of(tx1, 0, 11)], "bob", [("carol", 15 * COIN), ("bob", 45 * COIN // 10)])
    block = h.block([tx1, tx2], fees=COIN + COIN // 2)
    watched = [genesis[0]] + [OutPoint(tx.txid, i) for tx in block.txs for i in range(2)]
    for outpoint in watched:
        h.chain.get_coin(outpoint)
    return block, watched


def test_a_failed_statement_of_a_connect_leaves_the_cache_as_committed(tmp_path):
    reference = Harness(store=Store(tmp_path / "reference.sqlite"))
    block, _ = block_spending_genesis(reference)
    counter = StatementFaults(reference.chain.store)
    assert reference.chain.process_block(block).status == "connected"
    counter.remove()
    for fail_at in range(1, counter.statements + 1):
        h = Harness(store=Store(tmp_path / f"{fail_at}.sqlite"))
        block, watched = block_spending_genesis(h)
        before = dict(h.chain.coins._coins)
        faults = StatementFaults(h.chain.store, fail_at, DISK_FULL)
        with pytest.raises(sqlite3.OperationalError):
            h.chain.process_block(block)
        faults.remove()
        assert dict(h.chain.coins._coins) == before, f"failure at statement {fail_at}"
        assert_coin_cache_is_the_disk(h.chain)
        h.chain.process_block(block)  # stored already when the connect failed: resumed
        assert h.chain.tip.hash == block.hash
        assert [h.chain.get_coin(op) for op in watched] == \
            [reference.chain.get_coin(op) for op in watched]
        assert_coin_cache_is_the_disk(h.chain)
        h.chain.close()


class CommitFails:
    """The connection of a ``Store`` whose next COMMIT raises instead of running,
    as SQLITE_BUSY does (the transaction stays open)."""

    def __init__(self, store: Store):
        self.db, self.store, self.failed = store.db, store, False
        store.db = self

    def execute(self, sql, *args):
        if sql == "COMMIT" and not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("database is locked")
        return self.db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.db, name)

    def remove(self) -> None:
        self.store.db = self.db


def test_a_failed_commit_leaves_the_cache_and_the_file_as_they_were(tmp_path):
    h = Harness(store=Store(tmp_path / "chain.sqlite"))
    block, watched = block_spending_genesis(h)
    chain = h.chain
    before, tip = dict(chain.coins._coins), chain.tip
    faulty = CommitFails(chain.store)
    with pytest.raises(sqlite3.OperationalError):
        chain.process_block(block)
    faulty.remove()
    assert not chain.store.db.in_transaction  # rolled back, not left open
    assert chain.tip is tip and chain.store.get_meta("tip") == tip.hash
    assert dict(chain.coins._coins) == before
    assert_coin_cache_is_the_disk(chain)
    assert chain.process_block(block).status == "connected"  # the next write works
    assert chain.get_coin(watched[0]) is None
    assert_coin_cache_is_the_disk(chain)


def test_a_diff_that_fails_half_way_empties_the_cache():
    cache = UtxoCache(Store())
    cache.committed(dict(worst_case_entry(n) for n in range(10)))

    class Interrupted(dict):
        def items(self):
            yield worst_case_entry(99)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.committed(Interrupted())
    assert len(cache) == 0
