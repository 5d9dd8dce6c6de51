"""SQLite storage: blocks, the block index, the UTXO set, undo data and indexes.

One database file (WAL mode) per node. Tables:

    block_index  every valid-looking header kept: hash, header, height, status, seq
    blocks       raw block bytes, for active and side branches alike
    undo         per connected block, the coins it spent (to disconnect it)
    active       height -> hash of the active chain (locators, getblockhash)
    utxo         the coin set, indexed by owner (balances, listunspent)
    txindex      txid -> (height, position) for every tx on the active chain
    history      per owner and tx of the active chain: units in minus units out
    meta         the network and genesis hash the file was created for, the
                 tip, and the coin count and total (the money supply)

A block's rows go in multi-row INSERTs (``insert_rows``), and the WAL is
checkpointed every ``WAL_CHECKPOINT_PAGES`` pages rather than at nearly
every block's COMMIT, with a page cache of ``PAGE_CACHE_KIB``
(docs/benchmarks.md says what each table costs).

Every method that changes anything is one SQLite transaction (``_write``):
either all its statements take effect or none do, so a crash or a failed
write (disk full, database locked) at any point leaves the last committed
state, and reopening the file resumes it exactly. That includes creating
the file: the network, the genesis header, body and its connection are one
transaction. ``ChainState`` changes its memory only after a write returns.
"""

import sqlite3
from collections.abc import Callable
from pathlib import Path

from .block import Block
from .coins import Coin
from .tx import OutPoint

# Host parameters per statement: under 999, the oldest SQLite builds' limit.
MAX_VARIABLES = 998
# WAL pages before SQLite copies them back into the database file (its
# default is 1,000). A block of 2,000 txs dirties more than 1,000 pages
# (coins land at random places of the utxo tree), so with the default every
# block's COMMIT ran a checkpoint; successive blocks dirty many of the same
# pages, which a checkpoint every few blocks copies once: COMMIT 17.5 -> 11.4
# us per tx over 30 such blocks. The WAL file grows to about 40 MB (4 kB pages).
WAL_CHECKPOINT_PAGES = 10_000
# SQLite's page cache per connection, in KiB (its default is 2,000 KiB): a
# block's coins, owner-index entries and history rows land at random places
# of trees larger than that, and every page that is not cached is read back
# from the OS, a system call each. 32 MiB holds the utxo tree and its owner
# index for about 150,000 coins. Measured on 10 blocks of 2,000 txs: utxo
# inserts 8.6-9.7 us per tx instead of 11.4-14.0, the whole serial connect
# 102-122 us per tx instead of 111-125 (docs/benchmarks.md, round 4: coin cache). Pages are
# allocated as they are used, so a small database costs little.
PAGE_CACHE_KIB = 32_768

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) ;
CREATE TABLE IF NOT EXISTS block_index (
    hash BLOB PRIMARY KEY, header BLOB NOT NULL, height INTEGER NOT NULL,
    status INTEGER NOT NULL, seq INTEGER NOT NULL, reason TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (hash BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS undo (hash BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS active (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS utxo (
    txid BLOB NOT NULL, idx INTEGER NOT NULL, amount INTEGER NOT NULL,
    owner BLOB NOT NULL, height INTEGER NOT NULL, coinbase INTEGER NOT NULL,
    PRIMARY KEY (txid, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS utxo_by_owner ON utxo (owner);
CREATE TABLE IF NOT EXISTS txindex (
    txid BLOB PRIMARY KEY, height INTEGER NOT NULL, pos INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    owner BLOB NOT NULL, height INTEGER NOT NULL, pos INTEGER NOT NULL,
    txid BLOB NOT NULL, delta INTEGER NOT NULL,
    PRIMARY KEY (owner, height, pos)) WITHOUT ROWID;
"""


def insert_rows(db, table: str, rows: list[tuple]) -> None:
    """``INSERT INTO table VALUES (..), (..), ..``: as many rows per statement
    as ``MAX_VARIABLES`` allows. One statement of many rows costs SQLite
    less per row than ``executemany`` (one statement run per row): measured
    6.2 against 7.6 us per utxo row, 4.8 against 6.2 per history row."""
    if not rows:
        return
    width = len(rows[0])
    per = MAX_VARIABLES // width
    full = None
    for start in range(0, len(rows), per):
        part = rows[start:start + per]
        if len(part) == per:
            full = full or f"INSERT INTO {table} VALUES " + ",".join(
                ["(" + ",".join("?" * width) + ")"] * per)
            sql = full
        else:
            sql = f"INSERT INTO {table} VALUES " + ",".join(
                ["(" + ",".join("?" * width) + ")"] * len(part))
        db.execute(sql, [value for row in part for value in row])


def history_rows(block: Block, height: int, spent: list[tuple[OutPoint, Coin]]):
    """(owner, height, pos, txid, delta) for each owner touched by each tx."""
    rows = []
    cursor = 0
    for pos, tx in enumerate(block.txs):
        delta: dict[bytes, int] = {}
        n_in = len(tx.inputs)
        for _, coin in spent[cursor:cursor + n_in]:
            delta[coin.owner] = delta.get(coin.owner, 0) - coin.amount
        cursor += n_in
        for out in tx.outputs:
            delta[out.owner] = delta.get(out.owner, 0) + out.amount
        txid = tx.txid
        for owner, d in delta.items():
            rows.append((owner, height, pos, txid, d))
    return rows


class Store:
    """The node's database. Methods that change chain state take effect atomically."""

    def __init__(self, path: str | Path = ":memory:"):
        self.path = str(path)
        # Any one thread at a time: the node's shell calls it from its event loop
        # and from one validation thread, never both at once (node/gate.py).
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- transactions -------------------------------------------------------
    def _write(self, statements) -> None:
        """Run ``statements(cursor)`` inside one transaction: all or nothing.
        A COMMIT that fails and leaves the transaction open (SQLITE_BUSY does)
        is rolled back too, so the connection is never left inside a half
        transaction that the next write would trip over."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            statements(self.db)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    # -- meta -----------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else row[0]

    # -- block index and block data -----------------------------------------------
    def load_index(self) -> list[tuple[bytes, int, int, int, str | None]]:
        """(header bytes, height, status, seq, reason) of every entry, parents first."""
        return self.db.execute("SELECT header, height, status, seq, reason FROM block_index "
                               "ORDER BY height, seq").fetchall()

    def genesis_hash(self) -> bytes | None:
        """The hash of the height-0 block of the index (files from before the
        network was kept in meta), or None for an empty file."""
        row = self.db.execute("SELECT hash FROM block_index WHERE height=0 LIMIT 1").fetchone()
        return None if row is None else row[0]

    def create(self, network: str, genesis: Block, changes: dict[OutPoint, Coin | None],
               spent: list[tuple[OutPoint, Coin]], undo: bytes, status: int, seq: int) -> None:
        """Start the file: its network, the genesis header and body, and genesis
        connected, in one transaction (also over a first start that stopped
        half way, as older versions could)."""
        connect = self._apply_statements(genesis, 0, True, changes, spent, undo)

        def write(db):
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)",
                           [("network", network), ("genesis", genesis.hash)])
            db.execute("INSERT OR REPLACE INTO block_index VALUES (?,?,0,?,?,NULL)",
                       (genesis.hash, genesis.header.raw, status, seq))
            db.execute("INSERT OR REPLACE INTO blocks VALUES (?,?)", (genesis.hash, genesis.raw))
            connect(db)
        self._write(write)

    def put_index_entry(self, hash_: bytes, header: bytes, height: int) -> None:
        self._write(lambda db: db.execute(
            "INSERT OR IGNORE INTO block_index VALUES (?,?,?,0,0,NULL)", (hash_, header, height)))

    def forget_entries(self, hashes: list[bytes]) -> None:
        """Delete index entries (and any body) the chain state gives up on."""
        def write(db):
            db.executemany("DELETE FROM block_index WHERE hash=?", [(h,) for h in hashes])
            db.executemany("DELETE FROM blocks WHERE hash=?", [(h,) for h in hashes])
        self._write(write)

    def mark_failed(self, failures: list[tuple[bytes, int, str]]) -> None:
        """(hash, status, reject code) for each block found invalid."""
        self._write(lambda db: db.executemany(
            "UPDATE block_index SET status=?, reason=? WHERE hash=?",
            [(status, reason, hash_) for hash_, status, reason in failures]))

    def put_block(self, hash_: bytes, raw: bytes, status: int,
                  seqs: list[tuple[bytes, int]]) -> None:
        """Store a body and its entry's new status; ``seqs`` gives the sequence
        number of every entry whose chain this body completes."""
        def write(db):
            db.execute("INSERT OR REPLACE INTO blocks VALUES (?,?)", (hash_, raw))
            db.execute("UPDATE block_index SET status=? WHERE hash=?", (status, hash_))
            db.executemany("UPDATE block_index SET seq=? WHERE hash=?",
                           [(seq, h) for h, seq in seqs])
        self._write(write)

    def get_block_raw(self, hash_: bytes) -> bytes | None:
        row = self.db.execute("SELECT data FROM blocks WHERE hash=?", (hash_,)).fetchone()
        return None if row is None else row[0]

    def get_undo(self, hash_: bytes) -> bytes | None:
        row = self.db.execute("SELECT data FROM undo WHERE hash=?", (hash_,)).fetchone()
        return None if row is None else row[0]

    def active_hashes(self) -> list[bytes]:
        return [row[0] for row in self.db.execute("SELECT hash FROM active ORDER BY height")]

    # -- coins (a BaseView) ----------------------------------------------------------
    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        row = self.db.execute("SELECT amount, owner, height, coinbase FROM utxo "
                              "WHERE txid=? AND idx=?", outpoint).fetchone()
        return None if row is None else Coin(row[0], row[1], row[2], bool(row[3]))

    def get_coins(self, outpoints: list[OutPoint]) -> dict[OutPoint, Coin]:
        """The coins of those ``outpoints`` that are unspent, in one SELECT per
        499 (a join with a VALUES list: each row is one primary-key search)."""
        found = {}
        per = MAX_VARIABLES // 2
        for start in range(0, len(outpoints), per):
            part = outpoints[start:start + per]
            rows = self.db.execute(
                "WITH wanted(txid, idx) AS (VALUES " + ",".join(["(?,?)"] * len(part)) + ") "
                "SELECT utxo.txid, utxo.idx, amount, owner, height, coinbase FROM wanted "
                "CROSS JOIN utxo ON utxo.txid=wanted.txid AND utxo.idx=wanted.idx",
                [value for outpoint in part for value in outpoint])
            for r in rows:
                found[OutPoint(r[0], r[1])] = Coin(r[2], r[3], r[4], bool(r[5]))
        return found

    def unspent_txids(self, txids: list[bytes]) -> set[bytes]:
        """Those of ``txids`` with at least one unspent output (BIP30)."""
        found = set()
        for start in range(0, len(txids), MAX_VARIABLES):
            part = txids[start:start + MAX_VARIABLES]
            found.update(row[0] for row in self.db.execute(
                "SELECT DISTINCT txid FROM utxo WHERE txid IN (" + ",".join("?" * len(part)) + ")",
                part))
        return found

    def coins_of(self, owner: bytes) -> list[tuple[OutPoint, Coin]]:
        rows = self.db.execute("SELECT txid, idx, amount, owner, height, coinbase FROM utxo "
                               "WHERE owner=? ORDER BY height, txid, idx", (owner,))
        return [(OutPoint(r[0], r[1]), Coin(r[2], r[3], r[4], bool(r[5]))) for r in rows]

    def all_coins(self) -> dict[OutPoint, Coin]:
        rows = self.db.execute("SELECT txid, idx, amount, owner, height, coinbase FROM utxo")
        return {OutPoint(r[0], r[1]): Coin(r[2], r[3], r[4], bool(r[5])) for r in rows}

    def iter_coins(self, owner: bytes | None, after: OutPoint, max_height: int):
        """Lazily, the coins (of ``owner``, or all) created at ``max_height`` or
        below, in (txid, index) order from just after ``after``: one page of
        ``listunspent`` reads only as many rows as it returns."""
        where = "owner=? AND " if owner is not None else ""
        rows = self.db.execute("SELECT txid, idx, amount, owner, height, coinbase FROM utxo "
                               f"WHERE {where}(txid, idx) > (?, ?) AND height <= ? ORDER BY txid, idx",
                               (*([owner] if owner is not None else []), *after, max_height))
        return ((OutPoint(r[0], r[1]), Coin(r[2], r[3], r[4], bool(r[5]))) for r in rows)

    def utxo_stats(self) -> tuple[int, int]:
        """(number of coins, total units): kept in meta, updated with every block."""
        return int(self.get_meta("utxo_count", 0)), int(self.get_meta("utxo_total", 0))

    # -- indexes --------------------------------------------------------------------
    def tx_location(self, txid: bytes) -> tuple[int, int] | None:
        row = self.db.execute("SELECT height, pos FROM txindex WHERE txid=?", (txid,)).fetchone()
        return None if row is None else (row[0], row[1])

    def history_of(self, owner: bytes, after: tuple[int, int] = (-1, -1),
                   limit: int = -1) -> list[tuple[bytes, int, int, int]]:
        """(txid, height, pos, delta) oldest first; optionally only the
        ``limit`` rows after (height, pos) ``after`` (a page)."""
        return self.db.execute("SELECT txid, height, pos, delta FROM history WHERE owner=? "
                               "AND (height, pos) > (?, ?) ORDER BY height, pos LIMIT ?",
                               (owner, *after, limit)).fetchall()

    # -- moving the tip ---------------------------------------------------------------
    def apply_block(self, block: Block, height: int, connect: bool,
                    changes: dict[OutPoint, Coin | None],
                    spent: list[tuple[OutPoint, Coin]], undo: bytes | None,
                    before_commit: Callable[[], None] | None = None) -> None:
        """Connect (or disconnect) ``block`` at ``height`` in one transaction:
        coin changes, undo data, tx index, history, active chain and totals.
        ``before_commit`` runs after the statements, inside the transaction:
        if it raises, nothing was written."""
        statements = self._apply_statements(block, height, connect, changes, spent, undo)

        def write(db):
            statements(db)
            if before_commit is not None:
                before_commit()
        self._write(write)

    def _apply_statements(self, block: Block, height: int, connect: bool,
                          changes: dict[OutPoint, Coin | None],
                          spent: list[tuple[OutPoint, Coin]], undo: bytes | None):
        created = [(out.amount) for tx in block.txs for out in tx.outputs]
        sign = 1 if connect else -1
        count_delta = sign * (len(created) - len(spent))
        total_delta = sign * (sum(created) - sum(coin.amount for _, coin in spent))
        removed = sorted(op for op, coin in changes.items() if coin is None)
        added = sorted((op.txid, op.index, c.amount, c.owner, c.height, int(c.coinbase))
                       for op, c in changes.items() if c is not None)
        rows = sorted(history_rows(block, height, spent))
        count, total = self.utxo_stats()

        def write(db):
            db.executemany("DELETE FROM utxo WHERE txid=? AND idx=?", removed)
            insert_rows(db, "utxo", added)
            if connect:
                db.execute("INSERT INTO undo VALUES (?,?)", (block.hash, undo))
                insert_rows(db, "txindex", sorted((tx.txid, height, pos)
                                                  for pos, tx in enumerate(block.txs)))
                insert_rows(db, "history", rows)
                db.execute("INSERT INTO active VALUES (?,?)", (height, block.hash))
                tip = block.hash
            else:
                db.execute("DELETE FROM undo WHERE hash=?", (block.hash,))
                db.executemany("DELETE FROM txindex WHERE txid=?",
                               [(tx.txid,) for tx in block.txs])
                db.executemany("DELETE FROM history WHERE owner=? AND height=? AND pos=?",
                               [row[:3] for row in rows])
                db.execute("DELETE FROM active WHERE height=?", (height,))
                tip = block.header.prev_hash
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)",
                           [("tip", tip), ("utxo_count", count + count_delta),
                            ("utxo_total", total + total_delta)])
        return write
