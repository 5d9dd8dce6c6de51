"""Chain state: the block index, the choice of the best chain, and moving to it.

Theory of operation
-------------------
Every header that passes its checks gets a ``BlockEntry`` in the *block
index*, a tree rooted at genesis; each entry knows its height, its parent,
its children and the total work of the chain ending there. Blocks (bodies)
arrive separately and in any order. An entry becomes *chain-complete* when
its own body and every ancestor's body are stored (and it is not known
invalid); it is then a *candidate* tip and gets the next sequence number
``seq`` (Core's ``nSequenceId``).

The *active chain* is the candidate with the most cumulative work; on a tie,
the one whose whole chain had its data first (lowest ``seq``; the order
survives a restart, see docs/protocol-notes.md). ``_activate_best_chain``
walks there: disconnect blocks back to the fork point using each block's
undo data, then connect the new branch block by block, checking every rule
against the coins. If a block on the new branch breaks a rule, it and its
descendants (found through the children links: the work is what is marked,
not the size of the index) are marked invalid and the walk restarts, which
leads back to the old tip (or the next best).

Memory never runs ahead of SQLite. Every change (a header, a body, a
failure, a connect or disconnect, forgetting an entry) is first written as
one SQLite transaction (chain/storage.py); the index, statuses, ``seq``,
candidates, active chain and caches change only after that write returned.
That includes the coin cache (chain/utxocache.py) that ``get_coin`` and
block connect read through: it gets each committed block's coin diff.
A write that raises (disk full, database locked) reaches the caller and
leaves memory equal to what reopening the file would load; a reorg that one
cuts short is resumed by the next ``process_block`` (of any block, the same
one resubmitted too), or by the reopen. The file records the network it
was made for: opening it for another raises ``WrongNetwork``.

Whether a failed block is remembered as invalid (so its descendants get
``bad-prevblk``) comes from the fault table in ``chain/errors.py``: not when
its fault may not be its hash's (a mutated body, a time too far ahead).
A header whose proof of work was never shown valid is not remembered at
all: it cost its sender nothing.

What a sender can make us keep is bounded (proof of work is nearly free on
regtest, so work alone bounds nothing there):

* orphan blocks (parent unknown), by bytes and count, evicting from the
  sender holding the most (chain/orphans.py);
* bodies: an unrequested block whose chain has less work than our tip is
  not stored, only its header (Core's AcceptBlock rule);
* remembered invalid hashes without an index entry: the latest
  ``MAX_INVALID_HASHES``;
* *side* index entries, every entry off the active chain (side branches,
  headers waiting for bodies, invalid blocks): at most ``MAX_SIDE_ENTRIES``;
  past it the side leaf with the least work (the newest among equals) is
  forgotten, on disk and in memory;
* decoded bodies kept between storing and connecting them: the last
  ``MAX_CACHED_BODIES``, at most ``MAX_CACHED_BODY_BYTES``.

``process_block`` never raises for a bad block: it returns a
``BlockOutcome`` that says what happened, including which blocks were
connected and disconnected (the node's mempool needs both). It raises only
when a write fails.
"""

import heapq
import time as _time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from .block import Block, Header
from .block_rules import (check_block, check_block_context, check_header, check_header_context,
                          check_proof_of_work, connect_block, required_bits)
from .coins import CoinCache, EmptyView, decode_undo, disconnect_changes, encode_undo
from .errors import ORPHAN, REMEMBER, RuleError
from .gcpause import gc_paused
from .orphans import OrphanPool
from .params import NETWORKS, Network
from .pow import MTP_SPAN, block_work, median_time_past
from .sigcheck import SerialVerifier
from .storage import Store
from .utxocache import UtxoCache

HAVE_DATA = 1
FAILED = 2
# Forgetting an invalid hash only costs checking that header again (its
# context-free checks, or its parent's status): 10,000 hashes take ~1 MB.
MAX_INVALID_HASHES = 10_000
# An index entry takes about 700 bytes of memory: 50,000 side entries take
# about 35 MB. A syncing node holds one per header it knows ahead of its tip,
# so this also caps how far headers-first sync runs ahead of block download.
MAX_SIDE_ENTRIES = 50_000
# A decoded block takes about five times its size; these keep the bodies of
# a short out-of-order burst between storing and connecting them.
MAX_CACHED_BODIES = 16
MAX_CACHED_BODY_BYTES = 4_000_000


class WrongNetwork(Exception):
    """The database was created for another network than the one asked for."""

    def __init__(self, path: str, stored: str, wanted: str):
        self.path, self.stored, self.wanted = path, stored, wanted
        super().__init__(f"{path} holds the chain of {stored}, not of {wanted}")


class BlockEntry:
    """One node of the block index tree."""

    __slots__ = ("header", "hash", "height", "parent", "children", "chainwork", "status", "seq",
                 "reason", "chain_complete")

    def __init__(self, header: Header, height: int, parent: "BlockEntry | None",
                 status: int = 0, seq: int = 0, reason: str | None = None):
        self.header = header
        self.hash = header.hash
        self.height = height
        self.parent = parent
        self.children: dict[bytes, BlockEntry] = {}  # by hash, in the order they joined the index
        self.chainwork = (parent.chainwork if parent else 0) + block_work(header.bits)
        self.status = status
        self.seq = seq  # when its whole chain had data: the tie-break between equal work
        self.reason = reason  # reject code when failed
        self.chain_complete = False  # not failed, and this body and every ancestor's are stored

    @property
    def failed(self) -> bool:
        return bool(self.status & FAILED)

    def ancestor(self, height: int) -> "BlockEntry":
        entry = self
        while entry.height > height:
            entry = entry.parent
        return entry


@dataclass
class BlockOutcome:
    """What ``process_block`` did with a block.

    status: "connected" (on the active chain now), "side" (stored on a branch
    with less work), "orphan" (parent unknown, pooled until it comes),
    "unrequested" (not asked for and on a chain with less work than the tip:
    its header is kept, its body is not), "duplicate", "duplicate-invalid",
    or "invalid" (``error`` says why). ``connected`` and ``disconnected``
    list every block that moved, in order.
    """
    status: str
    error: RuleError | None = None
    connected: list[Block] = field(default_factory=list)
    disconnected: list[Block] = field(default_factory=list)


class ChainState:
    def __init__(self, net: Network, store: Store | None = None, clock=_time.time,
                 verifier=SerialVerifier()):
        self.net = net
        self.store = store or Store()
        self.coins = UtxoCache(self.store)  # starts empty: it only ever holds committed coins
        self.clock = clock
        self.verifier = verifier
        self.index: dict[bytes, BlockEntry] = {}
        self.active: list[BlockEntry] = []
        self.invalid: OrderedDict[bytes, str] = OrderedDict()  # invalid, no index entry -> code
        self.orphans = OrphanPool()
        self._candidates: set[BlockEntry] = set()
        self._unlinked: dict[bytes, dict[bytes, BlockEntry]] = {}  # parent -> children with bodies
        self._side: set[BlockEntry] = set()  # index entries off the active chain
        self._evictable: list[tuple[int, int, BlockEntry]] = []  # heap: side leaves (some stale)
        self._pushes = 0
        self._bodies: OrderedDict[bytes, Block] = OrderedDict()  # recently stored, decoded
        self._bodies_bytes = 0
        self._seq = 0
        self._load()

    # -- opening ---------------------------------------------------------------------
    def _load(self) -> None:
        self._check_network()
        active = self.store.active_hashes()
        if not active:  # a new file, or a first start (of an older version) cut short
            self._init_genesis()
            return
        on_active = set(active)
        for raw, height, status, seq, reason in self.store.load_index():
            header = Header.decode(raw)
            parent = self.index.get(header.prev_hash)
            entry = BlockEntry(header, height, parent, status, seq, reason)
            entry.chain_complete = bool(status & HAVE_DATA) and not entry.failed and (
                entry.parent is None or entry.parent.chain_complete)
            self._add_entry(entry)
            if entry.hash not in on_active:
                self._make_side(entry)
            self._seq = max(self._seq, seq)
            if entry.chain_complete:
                self._candidates.add(entry)
            elif status & HAVE_DATA and not entry.failed:
                self._unlinked.setdefault(entry.parent.hash, {})[entry.hash] = entry
        self.active = [self.index[h] for h in active]
        self._prune_candidates()
        self._activate_best_chain()  # resumes an interrupted reorg, if any

    def _check_network(self) -> None:
        """Refuse a file made for another network (or another genesis). The
        genesis is the index's height-0 row; the network's name is in meta
        (files from before it was kept there are named by their genesis)."""
        genesis = self.store.genesis_hash()
        if genesis is None:
            return
        name = self.store.get_meta("network") or next(
            (net.name for net in NETWORKS.values() if net.genesis.hash == genesis),
            f"an unknown network (genesis {genesis.hex()})")
        if name != self.net.name:
            raise WrongNetwork(self.store.path, name, self.net.name)
        if genesis != self.net.genesis.hash:
            raise WrongNetwork(self.store.path, f"{name} (genesis {genesis.hex()})",
                               f"{name} (genesis {self.net.genesis.hash.hex()})")

    def _init_genesis(self) -> None:
        genesis = self.net.genesis
        view = CoinCache(EmptyView())
        spent, _, signatures = connect_block(genesis, 0, view, self.net)
        signatures()  # a coinbase alone: none to wait for
        changes = view.changes()
        self.store.create(self.net.name, genesis, changes, spent, encode_undo(spent), HAVE_DATA, 1)
        self.coins.committed(changes)
        entry = BlockEntry(genesis.header, 0, None, HAVE_DATA, 1)
        entry.chain_complete = True
        self._add_entry(entry)
        self._candidates.add(entry)
        self._seq = 1
        self.active = [entry]

    def close(self) -> None:
        self.store.close()

    # -- reading -----------------------------------------------------------------------
    @property
    def tip(self) -> BlockEntry:
        return self.active[-1]

    @property
    def height(self) -> int:
        return len(self.active) - 1

    def entry_at(self, height: int) -> BlockEntry | None:
        return self.active[height] if 0 <= height < len(self.active) else None

    def is_active(self, entry: BlockEntry) -> bool:
        return self.entry_at(entry.height) is entry

    def get_block(self, hash_: bytes) -> Block | None:
        if hash_ in self._bodies:
            return self._bodies[hash_]
        raw = self.store.get_block_raw(hash_)
        return None if raw is None else Block.decode(raw)

    def get_coin(self, outpoint):
        """The unspent coin at ``outpoint`` on the active chain, or None (through
        the coin cache, chain/utxocache.py)."""
        return self.coins.get_coin(outpoint)

    def find_tx(self, txid: bytes):
        """(tx, entry) for a tx on the active chain, or None."""
        location = self.store.tx_location(txid)
        if location is None:
            return None
        entry = self.active[location[0]]
        return self.get_block(entry.hash).txs[location[1]], entry

    def median_time_past(self, entry: BlockEntry) -> int:
        times = []
        while entry is not None and len(times) < MTP_SPAN:
            times.append(entry.header.time)
            entry = entry.parent
        return median_time_past(times)

    def next_required_bits(self, parent: BlockEntry) -> int:
        """The bits a child of ``parent`` must carry."""
        height = parent.height + 1
        interval = self.net.retarget_interval
        start = None
        if interval and height % interval == 0:
            start = parent.ancestor(height - interval).header.time
        return required_bits(self.net, height, parent.header.bits, parent.header.time, start)

    def invalid_reason(self, hash_: bytes) -> str | None:
        """The reject code of a block known to be invalid, else None."""
        entry = self.index.get(hash_)
        if entry is not None:
            return entry.reason if entry.failed else None
        return self.invalid.get(hash_)

    def locator(self) -> list[bytes]:
        """Hashes of the active chain: the last 10, then exponentially sparser, then
        genesis (Core's LocatorEntries). The doubling steps bound the length: at
        most 11 + log2(height) hashes, 42 at height 2^31, far below the 101 a
        getheaders message may carry (node/messages.py)."""
        hashes, step, height = [], 1, self.height
        while height > 0:
            hashes.append(self.active[height].hash)
            if len(hashes) >= 10:
                step *= 2
            height -= step
        hashes.append(self.active[0].hash)
        return hashes

    def find_fork(self, locator: list[bytes]) -> BlockEntry:
        """The first locator hash on our active chain (genesis if none is)."""
        for hash_ in locator:
            entry = self.index.get(hash_)
            if entry is not None and self.is_active(entry):
                return entry
        return self.active[0]

    def headers_after(self, locator: list[bytes], stop: bytes | None,
                      limit: int) -> list[Header]:
        """Active-chain headers after the fork point of ``locator``, up to ``stop``
        and at most ``limit`` of them (a headers message carries 2,000)."""
        start = self.find_fork(locator).height + 1
        headers = []
        for entry in self.active[start:start + limit]:
            headers.append(entry.header)
            if entry.hash == stop:
                break
        return headers

    # -- headers ---------------------------------------------------------------------
    def accept_header(self, header: Header) -> BlockEntry:
        """Place a header in the index after its checks, or raise RuleError
        (``prev-blk-not-found``, kind orphan, when the parent is unknown).
        When the index already holds ``MAX_SIDE_ENTRIES`` side entries and
        this header is the least worth keeping, the entry returned is
        forgotten again at once (it is not in ``index``)."""
        reason = self.invalid_reason(header.hash)
        if reason is not None:
            raise RuleError(reason, f"block {header.hash.hex()} is known to be invalid")
        check_proof_of_work(header, self.net)  # no work shown: nothing worth remembering
        try:
            check_header(header)
        except RuleError as error:
            self._reject(header.hash, error)
            raise
        entry = self._accept_header_context(header)
        self._forget_side_entries()
        return entry

    def _accept_header_context(self, header: Header) -> BlockEntry:
        if header.hash in self.index:
            return self.index[header.hash]
        parent = self.index.get(header.prev_hash)
        parent_reason = self.invalid_reason(header.prev_hash)
        if parent_reason is not None:
            error = RuleError("bad-prevblk", f"parent {header.prev_hash.hex()} is known invalid "
                                             f"({parent_reason})")
            self._reject(header.hash, error)
            raise error
        if parent is None:
            raise RuleError("prev-blk-not-found", f"parent {header.prev_hash.hex()} is unknown")
        try:
            check_header_context(header, self.next_required_bits(parent),
                                 self.median_time_past(parent), int(self.clock()))
        except RuleError as error:
            self._reject(header.hash, error)
            raise
        entry = BlockEntry(header, parent.height + 1, parent)
        self.store.put_index_entry(entry.hash, header.raw, entry.height)
        self._add_entry(entry)
        self._make_side(entry)  # new entries are off the active chain until connected
        return entry

    # -- blocks ----------------------------------------------------------------------
    def process_block(self, block: Block, requested: bool = True,
                      source: str = "local") -> BlockOutcome:
        """Check a block, store it, and move to the best chain. Never raises a
        RuleError: the outcome says what happened.

        ``requested`` says whether this node asked for the block (the RPC,
        the miner and a peer's answer to our getdata do; a block a peer pushed
        unasked does not): an unrequested block on a chain with less work than
        our tip is not stored. ``source`` names the sender, so that the
        orphan pool can evict fairly."""
        with gc_paused():
            return self._process_block(block, requested, source)

    def _process_block(self, block: Block, requested: bool, source: str) -> BlockOutcome:
        # First finish a reorg that a failed write cut short, if any (cheap otherwise).
        connected, disconnected, _ = self._activate_best_chain()
        outcome = self._process_one(block, requested)
        outcome.connected[:0], outcome.disconnected[:0] = connected, disconnected
        if outcome.status == "orphan":
            self.orphans.add(block, source, requested)
        # Orphans waiting for a stored block (this one, then each orphan stored
        # in turn) are processed as they came, whatever became of the first.
        ready = [block.hash]
        while ready:
            parent_hash = ready.pop()
            if not self._has_valid_body(parent_hash):
                continue
            for orphan in self.orphans.children(parent_hash):
                result = self._process_one(orphan.block, orphan.requested)
                self.orphans.remove(orphan.block.hash)
                outcome.connected += result.connected
                outcome.disconnected += result.disconnected
                ready.append(orphan.block.hash)
        if outcome.status == "side" and self.is_active(self.index[block.hash]):
            outcome.status = "connected"  # its orphans made its branch the best
        self._forget_side_entries()
        return outcome

    def _has_valid_body(self, hash_: bytes) -> bool:
        entry = self.index.get(hash_)
        return entry is not None and bool(entry.status & HAVE_DATA) and not entry.failed

    def _process_one(self, block: Block, requested: bool) -> BlockOutcome:
        hash_ = block.hash
        reason = self.invalid_reason(hash_)
        if reason is not None:
            return BlockOutcome("duplicate-invalid", RuleError(reason, f"block {hash_.hex()} "
                                                                       f"is known to be invalid"))
        known = self.index.get(hash_)
        if known is not None and known.status & HAVE_DATA:
            return BlockOutcome("duplicate")
        try:
            check_proof_of_work(block.header, self.net)
        except RuleError as error:
            return BlockOutcome("invalid", error)  # no work shown: nothing worth remembering
        try:
            check_block(block)
        except RuleError as error:
            self._reject(hash_, error)
            return BlockOutcome("invalid", error)
        try:
            entry = self._accept_header_context(block.header)
        except RuleError as error:
            if error.fault.block & ORPHAN:
                return BlockOutcome("orphan", error)
            return BlockOutcome("invalid", error)
        if not requested and entry.chainwork < self.tip.chainwork:
            return BlockOutcome("unrequested")  # Core's AcceptBlock: only the header is kept
        try:
            check_block_context(block, entry.height)
        except RuleError as error:
            self._reject(hash_, error)
            return BlockOutcome("invalid", error)
        self._store_body(entry, block)
        connected, disconnected, failures = self._activate_best_chain()
        outcome = BlockOutcome("connected" if self.is_active(entry) else "side", None,
                               connected, disconnected)
        if hash_ in failures:
            outcome.status, outcome.error = "invalid", failures[hash_]
        elif entry.failed:
            outcome.status = "invalid"
            outcome.error = RuleError(entry.reason, f"block {hash_.hex()} builds on a block that "
                                                    f"was found invalid while connecting its branch")
        return outcome

    def _reject(self, hash_: bytes, error: RuleError) -> None:
        """Remember ``hash_`` as invalid if the fault table says its failure is its own."""
        if not error.fault.block & REMEMBER:
            return
        entry = self.index.get(hash_)
        if entry is not None:
            self._mark_failed(entry, error.code)
        else:
            self._remember_invalid(hash_, error.code)

    def _remember_invalid(self, hash_: bytes, code: str) -> None:
        self.invalid[hash_] = code
        self.invalid.move_to_end(hash_)
        while len(self.invalid) > MAX_INVALID_HASHES:
            self.invalid.popitem(last=False)

    def _store_body(self, entry: BlockEntry, block: Block) -> None:
        """Store the body; every entry whose chain it completes becomes a
        candidate with the next sequence number (Core's ReceivedBlockTransactions)."""
        completed = self._completed_by(entry)
        seqs = [(e.hash, self._seq + n) for n, e in enumerate(completed, start=1)]
        self.store.put_block(entry.hash, block.raw, entry.status | HAVE_DATA, seqs)
        entry.status |= HAVE_DATA
        self._seq += len(completed)
        for done, (_, seq) in zip(completed, seqs):
            done.seq = seq
            done.chain_complete = True
            self._unlinked.pop(done.hash, None)
            self._candidates.add(done)
        if not completed:
            self._unlinked.setdefault(entry.parent.hash, {})[entry.hash] = entry
        self._bodies[entry.hash] = block
        self._bodies_bytes += block.size
        while len(self._bodies) > MAX_CACHED_BODIES or self._bodies_bytes > MAX_CACHED_BODY_BYTES:
            self._bodies_bytes -= self._bodies.popitem(last=False)[1].size

    def _completed_by(self, entry: BlockEntry) -> list[BlockEntry]:
        """The entries that become chain-complete once ``entry``'s body is stored,
        parents before children; none while an ancestor's body is missing."""
        if entry.parent is not None and not entry.parent.chain_complete:
            return []
        completed, queue = [], deque([entry])
        while queue:
            current = queue.popleft()
            completed.append(current)
            queue.extend(self._unlinked.get(current.hash, {}).values())
        return completed

    def _mark_failed(self, entry: BlockEntry, code: str) -> None:
        """Mark ``entry`` invalid for ``code`` and every descendant for bad-prevblk.
        The walk follows children links and stops at entries already failed
        (their descendants were marked with them): it visits what it marks."""
        failures = [(entry, code)]
        todo = list(entry.children.values())
        while todo:
            child = todo.pop()
            if not child.failed:
                failures.append((child, "bad-prevblk"))
                todo += child.children.values()
        self.store.mark_failed([(e.hash, e.status | FAILED, reason) for e, reason in failures])
        for failed, reason in failures:
            failed.status |= FAILED
            failed.reason = reason
            failed.chain_complete = False  # it can never be connected
            self._candidates.discard(failed)
            self._unlink(failed)

    # -- the index, and what it may hold -----------------------------------------------
    def _add_entry(self, entry: BlockEntry) -> None:
        """Put an entry whose row is written into the index and its parent's children."""
        self.index[entry.hash] = entry
        if entry.parent is not None:
            entry.parent.children[entry.hash] = entry

    def _make_side(self, entry: BlockEntry) -> None:
        self._side.add(entry)
        self._pushes += 1
        heapq.heappush(self._evictable, (entry.chainwork, -self._pushes, entry))
        if len(self._evictable) > 2 * len(self._side) + 1024:  # drop stale items
            self._evictable = [item for item in self._evictable if self._is_side_leaf(item[2])]
            heapq.heapify(self._evictable)

    def _unlink(self, entry: BlockEntry) -> None:
        """``entry`` no longer waits for its parent's chain to complete. Never
        called for genesis (it never fails and is never forgotten)."""
        waiting = self._unlinked.get(entry.parent.hash)
        if waiting is not None and entry.hash in waiting:
            del waiting[entry.hash]
            if not waiting:
                del self._unlinked[entry.parent.hash]

    def _is_side_leaf(self, entry: BlockEntry) -> bool:
        return entry in self._side and not entry.children

    def _forget_side_entries(self) -> None:
        """While there are more than MAX_SIDE_ENTRIES side entries, forget the
        side leaf with the least work (the newest among equals)."""
        while len(self._side) > MAX_SIDE_ENTRIES and self._evictable:
            item = heapq.heappop(self._evictable)
            entry = item[2]
            if not self._is_side_leaf(entry):
                continue
            try:
                self.store.forget_entries([entry.hash])
            except BaseException:
                heapq.heappush(self._evictable, item)
                raise
            del self.index[entry.hash]
            self._side.discard(entry)
            self._candidates.discard(entry)
            self._unlink(entry)
            parent = entry.parent
            del parent.children[entry.hash]
            if entry.hash in self._bodies:
                self._bodies_bytes -= self._bodies.pop(entry.hash).size
            if entry.failed:
                self._remember_invalid(entry.hash, entry.reason)
            if self._is_side_leaf(parent):
                self._make_side(parent)

    # -- moving the tip ---------------------------------------------------------------
    def _best_candidate(self) -> BlockEntry:
        return max(self._candidates, key=lambda e: (e.chainwork, -e.seq))

    def _prune_candidates(self) -> None:
        """Drop candidates with less work than the tip (the tip stays): they
        can never be the best again. (Failed entries left when marked.)"""
        work = self.tip.chainwork
        self._candidates = {e for e in self._candidates if e.chainwork >= work}

    def _activate_best_chain(self):
        """Reorganise to the best valid candidate. Returns (connected blocks,
        disconnected blocks, {hash: RuleError} for blocks found invalid)."""
        connected: list[Block] = []
        disconnected: list[Block] = []
        failures: dict[bytes, RuleError] = {}
        while (best := self._best_candidate()) is not self.tip:
            fork = best.ancestor(min(best.height, self.height))
            while not self.is_active(fork):
                fork = fork.parent
            while self.tip is not fork:
                disconnected.append(self._disconnect_tip())
            path = []
            entry = best
            while entry is not fork:
                path.append(entry)
                entry = entry.parent
            for entry in reversed(path):
                try:
                    connected.append(self._connect(entry))
                except RuleError as error:
                    failures[entry.hash] = error
                    self._mark_failed(entry, error.code)
                    break
        self._prune_candidates()
        return connected, disconnected, failures

    def _connect(self, entry: BlockEntry) -> Block:
        block = self.get_block(entry.hash)
        view = CoinCache(self.coins)
        spent, _, signatures = connect_block(block, entry.height, view, self.net, self.verifier)
        changes = view.changes()
        # The write runs while worker processes check signatures; a failing
        # one raises before the commit, and the write is rolled back.
        self.store.apply_block(block, entry.height, True, changes, spent, encode_undo(spent),
                               before_commit=signatures)
        self.coins.committed(changes)
        self.active.append(entry)
        self._side.discard(entry)
        return block

    def _disconnect_tip(self) -> Block:
        entry = self.tip
        block = self.get_block(entry.hash)
        spent = decode_undo(self.store.get_undo(entry.hash))
        changes = disconnect_changes(block.txs, spent)
        self.store.apply_block(block, entry.height, False, changes, spent, None)
        self.coins.committed(changes)
        self.active.pop()
        self._make_side(entry)
        return block
