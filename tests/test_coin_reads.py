"""Coin reads for a block are batched (chain/coins.py, chain/storage.py).

A block's connect asks SQLite for the coins its inputs spend and for which
of its txids still have unspent outputs (BIP30) in a few SELECTs, chunked
under SQLite's host-parameter limit, not one SELECT per input and per tx.
The batched answers equal the one-by-one answers, across chunk boundaries.
Coins the coin cache holds (chain/utxocache.py) need no SELECT at all.
"""

import re

from chain.amounts import COIN
from chain.chainstate import ChainState
from chain.storage import MAX_VARIABLES
from chain.tx import OutPoint

from .helpers import NOW, Harness, make_tx, owner

READS_UTXO = re.compile(r"(SELECT|WITH)\b.*\butxo\b", re.DOTALL)
FAN = 1_100  # outputs of the fan-out tx: more than one chunk of outpoints


def fanned_out() -> tuple[Harness, object]:
    h = Harness()
    h.mine_empty(10)
    genesis = h.net.genesis.txs[0]
    coin = (OutPoint(genesis.txid, 0), h.chain.get_coin(OutPoint(genesis.txid, 0)))
    each = (coin[1].amount - COIN) // FAN
    fan = make_tx([coin], "alice", [("alice", each)] * FAN)
    assert h.mine([fan], fees=coin[1].amount - each * FAN).status == "connected"
    return h, fan


def test_get_coins_equals_one_by_one_across_chunks():
    h, fan = fanned_out()
    store = h.chain.store
    spent = OutPoint(h.net.genesis.txs[0].txid, 0)
    wanted = [OutPoint(fan.txid, i) for i in range(FAN + 5)]  # the last 5 never existed
    wanted += [spent, OutPoint(b"\x77" * 32, 0)] + wanted[:3]  # spent, unknown, repeated
    assert len(wanted) > 2 * (MAX_VARIABLES // 2)
    expected = {op: store.get_coin(op) for op in wanted if store.get_coin(op) is not None}
    assert len(expected) == FAN
    assert store.get_coins(wanted) == expected
    assert store.get_coins([]) == {}


def test_unspent_txids_across_chunks():
    h, fan = fanned_out()
    store = h.chain.store
    spent_genesis = h.net.genesis.txs[0].txid
    unknown = [bytes([i % 256, i // 256]) * 16 for i in range(MAX_VARIABLES + 10)]
    coinbase = h.chain.get_block(h.chain.entry_at(3).hash).txs[0].txid
    txids = unknown + [fan.txid, spent_genesis, coinbase]  # the real ones in the second chunk
    assert store.unspent_txids(txids) == {fan.txid, coinbase}
    assert store.unspent_txids([]) == set()


def utxo_selects_of_connecting(chain, block) -> list[str]:
    """The SQL statements that read the utxo table while ``chain`` connects ``block``."""
    selects: list[str] = []
    chain.store.db.set_trace_callback(
        lambda sql: selects.append(sql) if READS_UTXO.match(sql) else None)
    try:
        assert chain.process_block(block).status == "connected"
    finally:
        chain.store.db.set_trace_callback(None)
    return selects


def six_hundred_spends(h: Harness, fan):
    coins = [(OutPoint(fan.txid, i), h.chain.store.get_coin(OutPoint(fan.txid, i)))
             for i in range(600)]
    txs = [make_tx([c], "alice", [("bob", c[1].amount - 100)]) for c in coins]
    return coins, h.block(txs, fees=100 * len(txs))


def test_a_block_reads_its_coins_in_a_few_selects():
    """600 one-input txs, after a restart (the coin cache empty): 600
    outpoints take 2 SELECTs (499 per chunk) and 601 txids 1, where one
    SELECT per input and per tx would take 1,201."""
    h, fan = fanned_out()
    coins, block = six_hundred_spends(h, fan)
    restarted = ChainState(h.net, h.chain.store, clock=lambda: NOW)
    selects = utxo_selects_of_connecting(restarted, block)
    assert len(selects) == 3, [sql[:80] for sql in selects]
    assert h.chain.store.coins_of(owner("bob"))[0][1].amount == coins[0][1].amount - 100


def test_a_block_reads_cached_coins_from_memory():
    """The coin cache answers for the coins it holds (chain/utxocache.py): the
    fan-out's outputs, made by a block this chain state connected, need no
    SELECT, only BIP30's; after a restart, coins read since then (200 of
    the 600) are answered from memory and the other 400 in one SELECT."""
    h, fan = fanned_out()
    _, block = six_hundred_spends(h, fan)
    selects = utxo_selects_of_connecting(h.chain, block)
    assert len(selects) == 1 and "DISTINCT" in selects[0], [sql[:80] for sql in selects]

    h, fan = fanned_out()
    _, block = six_hundred_spends(h, fan)
    restarted = ChainState(h.net, h.chain.store, clock=lambda: NOW)
    for i in range(200):
        restarted.get_coin(OutPoint(fan.txid, i))
    assert len(utxo_selects_of_connecting(restarted, block)) == 2


def test_any_unspent_of_outputs_made_spent_or_found_in_the_view():
    """BIP30's question on a block's view, in each case it can meet: a txid
    with nothing unspent anywhere, outputs made earlier in the same block
    (then spent one by one), and unspent outputs in the base that the block
    spends or leaves."""
    from chain.coins import CoinCache
    h, fan = fanned_out()
    stranger = make_tx([(OutPoint(b"\x01" * 32, 0), h.chain.get_coin(OutPoint(fan.txid, 0)))],
                       "alice", [("bob", COIN), ("bob", COIN)])
    view = CoinCache(h.chain.store)
    view.prefetch([OutPoint(fan.txid, i) for i in range(3)], [stranger.txid, fan.txid])
    assert view.any_unspent(stranger.txid, 2) is False  # nothing in the base, nothing made
    view.add_outputs(stranger, 12)
    assert view.any_unspent(stranger.txid, 2) is True   # made here
    view.spend(OutPoint(stranger.txid, 0))
    assert view.any_unspent(stranger.txid, 2) is True   # one left
    view.spend(OutPoint(stranger.txid, 1))
    assert view.any_unspent(stranger.txid, 2) is False  # both spent here
    assert view.any_unspent(fan.txid, 3) is True        # unspent in the base
    for i in range(3):
        view.spend(OutPoint(fan.txid, i))
    assert view.any_unspent(fan.txid, 3) is False       # the block spent the first three
    assert view.any_unspent(fan.txid, 4) is True        # the fourth is still in the base
    view.add_outputs(fan, 12)                            # the same txid made again here
    assert view.any_unspent(fan.txid, 3) is True
