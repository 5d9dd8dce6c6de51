"""The orphan block pool: blocks whose parent is unknown, kept until it comes.

A block arrives before its parent when a miner's new block overtakes the one
before it, or when blocks are submitted out of order. Such a block passed
every check that needs no parent; it waits here, keyed by its parent's hash,
and is processed when the parent is stored.

Anyone can send orphans (a valid proof of work is nearly free on regtest),
so the pool is bounded by the total serialized bytes of its blocks as well
as by their number, and eviction is fair: when a bound is passed, the
oldest orphan *of the source holding the most bytes* goes. A peer that
floods the pool only ever evicts its own blocks once it holds more than
anyone else, never the one block an honest peer sent.
"""

from collections import OrderedDict
from typing import NamedTuple

from .block import Block

# An orphan is worth keeping for the seconds until its parent arrives. Four
# full blocks (the size limit is 1 MB) cover a race between a few miners; a
# decoded block takes about five times its serialized size in Python objects,
# so the pool stays near 20 MB however it is filled (100 full blocks, the old
# count-only bound, took about 540 MB).
MAX_ORPHAN_BYTES = 4_000_000
# Tiny blocks cost Python objects beyond their bytes: the count is bounded too.
MAX_ORPHAN_BLOCKS = 100


class Orphan(NamedTuple):
    block: Block
    source: str       # who sent it: "rpc", a peer's "host:port", ...
    requested: bool   # whether we asked for it (see ChainState.process_block)


class OrphanPool:
    """Orphan blocks by hash, oldest first; ``in``, ``len`` and iteration give hashes."""

    def __init__(self):
        self._orphans: OrderedDict[bytes, Orphan] = OrderedDict()
        self._by_parent: dict[bytes, dict[bytes, None]] = {}  # parent hash -> orphan hashes
        self._bytes_of: dict[str, int] = {}  # source -> bytes it holds in the pool
        self.bytes = 0

    def __contains__(self, hash_: bytes) -> bool:
        return hash_ in self._orphans

    def __len__(self) -> int:
        return len(self._orphans)

    def __iter__(self):
        return iter(self._orphans)

    def bytes_of(self, source: str) -> int:
        return self._bytes_of.get(source, 0)

    def add(self, block: Block, source: str, requested: bool) -> None:
        """Keep ``block``, then evict fairly while a bound is passed."""
        if block.hash in self._orphans:
            return
        self._orphans[block.hash] = Orphan(block, source, requested)
        self._by_parent.setdefault(block.header.prev_hash, {})[block.hash] = None
        self._bytes_of[source] = self._bytes_of.get(source, 0) + block.size
        self.bytes += block.size
        while len(self._orphans) > MAX_ORPHAN_BLOCKS or self.bytes > MAX_ORPHAN_BYTES:
            heaviest = max(self._bytes_of, key=self._bytes_of.__getitem__)
            self.remove(next(h for h, o in self._orphans.items() if o.source == heaviest))

    def children(self, parent_hash: bytes) -> list[Orphan]:
        """The orphans waiting for ``parent_hash``, oldest first (left in the pool)."""
        return [self._orphans[h] for h in self._by_parent.get(parent_hash, ())]

    def remove(self, hash_: bytes) -> None:
        orphan = self._orphans.pop(hash_, None)
        if orphan is None:
            return
        parent = orphan.block.header.prev_hash
        del self._by_parent[parent][hash_]
        if not self._by_parent[parent]:
            del self._by_parent[parent]
        self._bytes_of[orphan.source] -= orphan.block.size
        if not self._bytes_of[orphan.source]:
            del self._bytes_of[orphan.source]
        self.bytes -= orphan.block.size
