"""Chain state: the block index, the choice of the best chain, and moving to it.

Theory of operation
-------------------
Every header that passes its checks gets a ``BlockEntry`` in the *block
index*, a tree rooted at genesis; each entry knows its height, its parent and
the total work of the chain ending there. Blocks (bodies) arrive separately
and in any order; an entry whose own body and all ancestors' bodies are
stored is a *candidate* tip.

The *active chain* is the candidate with the most cumulative work (on a tie,
the one whose body arrived first). ``_activate_best_chain`` walks there:
disconnect blocks back to the fork point using each block's undo data,
then connect the new branch block by block, checking every rule against the
coins. If a block on the new branch breaks a rule, it and its descendants
are marked invalid and the walk restarts, which leads back to the old tip
(or the next best). Each connect or disconnect is one SQLite transaction.

Whether a failed block is remembered as invalid (so its descendants get
``bad-prevblk``) comes from the fault table in ``chain/errors.py``: not when
its fault may not be its hash's (a mutated body, a time too far ahead).
A header whose proof of work was never shown valid is not remembered at
all: it cost its sender nothing. A block whose parent is unknown waits in a
bounded orphan pool until the parent arrives.

``process_block`` never raises for a bad block: it returns a
``BlockOutcome`` that says what happened, including which blocks were
connected and disconnected (the node's mempool needs both).
"""

import time as _time
from collections import OrderedDict
from dataclasses import dataclass, field

from .block import Block, Header
from .block_rules import (check_block, check_block_context, check_header, check_header_context,
                          check_proof_of_work, connect_block, required_bits, verify_serial)
from .coins import CoinCache, EmptyView, decode_undo, encode_undo
from .errors import ORPHAN, REMEMBER, RuleError
from .params import Network
from .pow import block_work, median_time_past
from .storage import Store

HAVE_DATA = 1
FAILED = 2
MAX_ORPHAN_BLOCKS = 100
MAX_LOCATOR = 101


class BlockEntry:
    """One node of the block index tree."""

    __slots__ = ("header", "hash", "height", "parent", "chainwork", "status", "seq", "reason",
                 "chain_complete")

    def __init__(self, header: Header, height: int, parent: "BlockEntry | None",
                 status: int = 0, seq: int = 0, reason: str | None = None):
        self.header = header
        self.hash = header.hash
        self.height = height
        self.parent = parent
        self.chainwork = (parent.chainwork if parent else 0) + block_work(header.bits)
        self.status = status
        self.seq = seq  # order in which bodies arrived: the tie-break between equal work
        self.reason = reason  # reject code when failed
        self.chain_complete = False  # this body and every ancestor's body are stored

    @property
    def failed(self) -> bool:
        return bool(self.status & FAILED)

    def ancestor(self, height: int) -> "BlockEntry":
        entry = self
        while entry.height > height:
            entry = entry.parent
        return entry

    def __repr__(self) -> str:
        return f"BlockEntry({self.hash.hex()[:16]}..., height {self.height})"


@dataclass
class BlockOutcome:
    """What ``process_block`` did with a block.

    status: "connected" (on the active chain now), "side" (stored on a branch
    with less work), "orphan" (parent unknown, pooled until it comes),
    "duplicate", "duplicate-invalid", or "invalid" (``error`` says why).
    ``connected`` and ``disconnected`` list every block that moved, in order.
    """
    status: str
    error: RuleError | None = None
    connected: list[Block] = field(default_factory=list)
    disconnected: list[Block] = field(default_factory=list)


class ChainState:
    def __init__(self, net: Network, store: Store | None = None, clock=_time.time,
                 verifier=verify_serial):
        self.net = net
        self.store = store or Store()
        self.clock = clock
        self.verifier = verifier
        self.index: dict[bytes, BlockEntry] = {}
        self.active: list[BlockEntry] = []
        self.invalid: dict[bytes, str] = {}  # known-invalid hashes with no index entry -> code
        self.orphans: OrderedDict[bytes, Block] = OrderedDict()
        self._candidates: set[BlockEntry] = set()
        self._unlinked: dict[bytes, list[BlockEntry]] = {}  # parent hash -> children with bodies
        self._bodies: OrderedDict[bytes, Block] = OrderedDict()  # recently stored, decoded
        self._seq = 0
        self._load()

    # -- opening ---------------------------------------------------------------------
    def _load(self) -> None:
        rows = self.store.load_index()
        if not rows:
            self._init_genesis()
            return
        for raw, height, status, seq, reason in rows:
            header = Header.decode(raw)
            parent = self.index.get(header.prev_hash)
            entry = BlockEntry(header, height, parent, status, seq, reason)
            self.index[entry.hash] = entry
            self._seq = max(self._seq, seq)
            if status & HAVE_DATA and not entry.failed:
                self._link(entry)
        self.active = [self.index[h] for h in self.store.active_hashes()]
        if not self.active:  # the first start stopped before genesis was connected
            self._connect_genesis()
        self._prune_candidates()
        self._activate_best_chain()  # resumes an interrupted reorg, if any

    def _init_genesis(self) -> None:
        genesis = self.net.genesis
        entry = BlockEntry(genesis.header, 0, None)
        self.index[entry.hash] = entry
        self.store.put_index_entry(entry.hash, genesis.header.raw, 0)
        self._store_body(entry, genesis)
        self._connect_genesis()

    def _connect_genesis(self) -> None:
        genesis = self.net.genesis
        view = CoinCache(EmptyView())
        spent, _ = connect_block(genesis, 0, view, self.net, self.verifier)
        self.store.apply_block(genesis, 0, True, view.changes(), spent, encode_undo(spent))
        self.active.append(self.index[genesis.hash])

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
        return self.store.get_coin(outpoint)

    def any_unspent(self, txid: bytes, count: int) -> bool:
        return self.store.any_unspent(txid, count)

    def find_tx(self, txid: bytes):
        """(tx, entry) for a tx on the active chain, or None."""
        location = self.store.tx_location(txid)
        if location is None:
            return None
        entry = self.active[location[0]]
        return self.get_block(entry.hash).txs[location[1]], entry

    def median_time_past(self, entry: BlockEntry) -> int:
        times = []
        while entry is not None and len(times) < 11:
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
            return (entry.reason or "bad-prevblk") if entry.failed else None
        return self.invalid.get(hash_)

    def locator(self) -> list[bytes]:
        """Hashes of the active chain: the last 10, then exponentially sparser, then genesis."""
        hashes, step, height = [], 1, self.height
        while height > 0 and len(hashes) < MAX_LOCATOR - 1:
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
                      limit: int = 2000) -> list[Header]:
        """Active-chain headers after the fork point of ``locator``, up to ``stop``."""
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
        (``prev-blk-not-found``, kind orphan, when the parent is unknown)."""
        reason = self.invalid_reason(header.hash)
        if reason is not None:
            raise RuleError(reason, f"block {header.hash.hex()} is known to be invalid")
        if header.hash in self.index:
            return self.index[header.hash]
        check_proof_of_work(header, self.net)  # no work shown: nothing worth remembering
        try:
            check_header(header, self.net)
        except RuleError as error:
            self._reject(header.hash, error)
            raise
        return self._accept_header_context(header)

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
        self.index[entry.hash] = entry
        self.store.put_index_entry(entry.hash, header.raw, entry.height)
        return entry

    # -- blocks ----------------------------------------------------------------------
    def process_block(self, block: Block) -> BlockOutcome:
        """Check a block, store it, and move to the best chain. Never raises a
        RuleError: the outcome says what happened."""
        outcome = self._process_one(block)
        # Orphans waiting for this block (and for their own children) can now go.
        ready = [block.hash] if outcome.status in ("connected", "side") else []
        while ready:
            parent_hash = ready.pop()
            for orphan in [b for b in self.orphans.values() if b.header.prev_hash == parent_hash]:
                del self.orphans[orphan.hash]
                result = self._process_one(orphan)
                outcome.connected += result.connected
                outcome.disconnected += result.disconnected
                if result.status in ("connected", "side"):
                    ready.append(orphan.hash)
        entry = self.index.get(block.hash)
        if outcome.status in ("connected", "side") and entry is not None:
            outcome.status = "connected" if self.is_active(entry) else "side"
        return outcome

    def _process_one(self, block: Block) -> BlockOutcome:
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
            check_block(block, self.net)
        except RuleError as error:
            self._reject(hash_, error)
            return BlockOutcome("invalid", error)
        try:
            entry = self._accept_header_context(block.header)
        except RuleError as error:
            if error.fault.block & ORPHAN:
                self._add_orphan(block)
                return BlockOutcome("orphan", error)
            return BlockOutcome("invalid", error)
        try:
            check_block_context(block, entry.height)
        except RuleError as error:
            self._reject(hash_, error)
            return BlockOutcome("invalid", error)
        self._store_body(entry, block)
        connected, disconnected, failures = self._activate_best_chain()
        outcome = BlockOutcome("connected", None, connected, disconnected)
        if hash_ in failures:
            outcome.status, outcome.error = "invalid", failures[hash_]
        elif entry.failed:
            outcome.status = "invalid"
            outcome.error = RuleError(entry.reason, f"block {hash_.hex()} builds on a block that "
                                                    f"was found invalid while connecting its branch")
        return outcome

    def _add_orphan(self, block: Block) -> None:
        self.orphans[block.hash] = block
        while len(self.orphans) > MAX_ORPHAN_BLOCKS:
            self.orphans.popitem(last=False)

    def _reject(self, hash_: bytes, error: RuleError) -> None:
        """Remember ``hash_`` as invalid if the fault table says its failure is its own."""
        if not error.fault.block & REMEMBER:
            return
        entry = self.index.get(hash_)
        if entry is not None:
            self._mark_failed(entry, error.code)
        else:
            self.invalid[hash_] = error.code

    def _store_body(self, entry: BlockEntry, block: Block) -> None:
        self._seq += 1
        entry.status |= HAVE_DATA
        entry.seq = self._seq
        self.store.put_block(entry.hash, block.raw, entry.status, entry.seq)
        self._bodies[entry.hash] = block
        while len(self._bodies) > 16:
            self._bodies.popitem(last=False)
        self._link(entry)

    def _link(self, entry: BlockEntry) -> None:
        """Make ``entry`` a candidate tip if every ancestor's body is stored,
        then do the same for children that were waiting for it."""
        if entry.parent is not None and not entry.parent.chain_complete:
            self._unlinked.setdefault(entry.parent.hash, []).append(entry)
            return
        waiting = [entry]
        while waiting:
            current = waiting.pop()
            current.chain_complete = True
            self._candidates.add(current)
            waiting += [child for child in self._unlinked.pop(current.hash, []) if not child.failed]

    def _mark_failed(self, entry: BlockEntry, code: str) -> None:
        """Mark ``entry`` invalid for ``code`` and every descendant for bad-prevblk."""
        failures = [(entry, code)]
        failures += [(other, "bad-prevblk") for other in self.index.values()
                     if other.height > entry.height and other.ancestor(entry.height) is entry]
        for failed, reason in failures:
            failed.status |= FAILED
            failed.reason = reason
            self._candidates.discard(failed)
        self.store.mark_failed([(e.hash, e.status, reason) for e, reason in failures])

    # -- moving the tip ---------------------------------------------------------------
    def _best_candidate(self) -> BlockEntry:
        return max(self._candidates, key=lambda e: (e.chainwork, -e.seq))

    def _prune_candidates(self) -> None:
        tip = self.tip
        self._candidates = {e for e in self._candidates
                            if e is tip or (e.chainwork >= tip.chainwork and not e.failed)}

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
        view = CoinCache(self.store)
        spent, _ = connect_block(block, entry.height, view, self.net, self.verifier)
        self.store.apply_block(block, entry.height, True, view.changes(), spent, encode_undo(spent))
        self.active.append(entry)
        return block

    def _disconnect_tip(self) -> Block:
        entry = self.tip
        block = self.get_block(entry.hash)
        spent = decode_undo(self.store.get_undo(entry.hash))
        view = CoinCache(self.store)
        cursor = len(spent)
        for tx in reversed(block.txs):
            view.remove_outputs(tx)
            for outpoint, coin in spent[cursor - len(tx.inputs):cursor]:
                view.restore(outpoint, coin)
            cursor -= len(tx.inputs)
        self.store.apply_block(block, entry.height, False, view.changes(), spent, None)
        self.active.pop()
        return block
