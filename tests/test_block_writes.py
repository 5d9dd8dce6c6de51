"""A block's rows are written in a few multi-row INSERTs (chain/storage.py).

Connecting a block inserts its new coins, its txindex rows and its history
rows as many rows per statement as SQLite's host-parameter limit allows,
not one statement run per row; what lands in the tables is exactly the
rows of the block, across chunk boundaries. A file store checkpoints its
WAL every ``WAL_CHECKPOINT_PAGES`` pages, not at SQLite's default 1,000,
and every store caches up to ``PAGE_CACHE_KIB`` of pages, not SQLite's
default 2,000 KiB (a bound SQLite itself keeps: a page past it is evicted).
"""

import re

from chain.chainstate import ChainState
from chain.params import REGTEST
from chain.storage import MAX_VARIABLES, PAGE_CACHE_KIB, WAL_CHECKPOINT_PAGES, Store
from chain.tx import OutPoint

from .helpers import NOW, make_tx
from .test_coin_reads import fanned_out

INSERT = re.compile(r"INSERT INTO (\w+) VALUES")


def test_a_block_writes_its_rows_in_a_few_inserts():
    h, fan = fanned_out()
    coins = [(OutPoint(fan.txid, i), h.chain.get_coin(OutPoint(fan.txid, i))) for i in range(600)]
    txs = [make_tx([c], "alice", [("bob", 100), ("carol", c[1].amount - 200)]) for c in coins]
    block = h.block(txs, fees=100 * len(txs))
    inserts: list[str] = []
    h.chain.store.db.set_trace_callback(
        lambda sql: inserts.append(INSERT.match(sql).group(1)) if INSERT.match(sql) else None)
    try:
        assert h.chain.process_block(block).status == "connected"
    finally:
        h.chain.store.db.set_trace_callback(None)
    coin_rows = 2 * 600 + 1  # two outputs per tx and the coinbase's
    history = 3 * 600 + 1  # alice pays, bob and carol receive; the miner
    per_row = {"utxo": 6, "txindex": 3, "history": 5}
    expected = {"utxo": coin_rows, "txindex": 601, "history": history}
    for table, rows in expected.items():
        assert inserts.count(table) == -(-rows // (MAX_VARIABLES // per_row[table])), table
    store = h.chain.store
    assert all(store.get_coin(OutPoint(tx.txid, i)) is not None
               for tx in block.txs for i in range(len(tx.outputs)))
    assert all(store.tx_location(tx.txid) == (h.chain.height, pos)
               for pos, tx in enumerate(block.txs))
    height = h.chain.height
    assert store.db.execute("SELECT count(*) FROM history WHERE height=?",
                            (height,)).fetchone()[0] == history


def test_a_file_store_checkpoints_its_wal_every_so_many_pages(tmp_path):
    chain = ChainState(REGTEST, Store(tmp_path / "chain.sqlite"), clock=lambda: NOW)
    try:
        assert chain.store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == \
            WAL_CHECKPOINT_PAGES
    finally:
        chain.close()


def test_every_store_caches_up_to_page_cache_kib_of_pages(tmp_path):
    for store in (Store(tmp_path / "chain.sqlite"), Store()):
        try:
            assert store.db.execute("PRAGMA cache_size").fetchone()[0] == -PAGE_CACHE_KIB
        finally:
            store.close()
