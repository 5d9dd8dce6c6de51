"""Block download: which block bodies to ask which peer for, and whom to give up on.

Theory of operation
-------------------
Headers come first, then bodies. For every peer we keep ``best``: the
header with the most work that the peer is known to have (from the headers
it sent us, the blocks it announced or delivered). A peer that has a header
has all its ancestors too. So the blocks worth asking a peer for are those
on the path from our chain up to its ``best``, and only if that header has
more work than our tip: a branch with less work can never become our chain,
so fork headers nobody serves the bodies of cost nothing but the headers.

From that path we ask, lowest height first, for the blocks we lack, looking
no further than ``WINDOW`` blocks past the first one we lack, and keeping at
most ``MAX_BLOCKS_IN_FLIGHT`` requests open per peer (Core's numbers). A
block is asked of one peer at a time; once that request is
``STALL_SECONDS`` old, a second peer that has it may be asked too, and so
on. So a peer that announces a block and holds it back delays it by seconds,
not for good, and no single missing block stops the others from coming.

A peer that answers ``notfound`` for a block on its own best path did not
have it after all: its ``best`` moves back to that block's parent, and it
is asked for nothing past it. A peer that has not delivered a block within
``BLOCK_TIMEOUT`` of being asked is disconnected (not banned: it may just be
slow), as Core does; its requests go to others.

A block announced by ``inv`` that we do not have is asked of the announcer
at once (the fastest way to relay a new block, whatever its branch) unless
another peer was asked for it less than ``STALL_SECONDS`` ago; if we lack
its header too, the node then asks the announcer for headers, which makes
it a candidate for later.

Bounds: per peer, ``MAX_BLOCKS_IN_FLIGHT`` requests and a cached path of at
most ``WINDOW`` headers; overall, requests are at most 16 per peer.
"""

from dataclasses import dataclass, field

from chain.chainstate import HAVE_DATA, BlockEntry, ChainState

MAX_BLOCKS_IN_FLIGHT = 16   # per peer (Core's MAX_BLOCKS_IN_TRANSIT_PER_PEER)
WINDOW = 1024               # how far past the first missing block we look (Core's BLOCK_DOWNLOAD_WINDOW)
STALL_SECONDS = 2.0         # after this, a block in flight may be asked of another peer too
BLOCK_TIMEOUT = 60.0        # a peer that has not delivered a block by then is dropped


@dataclass
class PeerDownload:
    preferred: bool
    best: BlockEntry | None = None
    in_flight: dict[bytes, float] = field(default_factory=dict)  # hash -> when asked
    path: list[BlockEntry] = field(default_factory=list)          # lowest blocks toward best
    path_to: BlockEntry | None = None                             # the best the path leads to


class BlockDownload:
    def __init__(self, chain: ChainState):
        self.chain = chain
        self.peers: dict[int, PeerDownload] = {}
        self.requests: dict[bytes, dict[int, float]] = {}  # hash -> {peer: when asked}

    def add_peer(self, peer: int, preferred: bool) -> None:
        self.peers[peer] = PeerDownload(preferred)

    def remove_peer(self, peer: int) -> None:
        state = self.peers.pop(peer, None)
        if state is not None:
            for hash_ in state.in_flight:
                self._forget_request(hash_, peer)

    # -- what peers are known to have -------------------------------------------------------
    def peer_has(self, peer: int, entry: BlockEntry) -> None:
        state = self.peers.get(peer)
        if state is not None and (state.best is None or entry.chainwork > state.best.chainwork):
            state.best = entry

    def best_height(self, peer: int) -> int:
        best = self.peers[peer].best
        return -1 if best is None else best.height

    def announced(self, peer: int, hash_: bytes, now: float) -> bool:
        """An ``inv`` of a block we do not have: True if it is asked of ``peer`` now."""
        state = self.peers[peer]
        entry = self.chain.index.get(hash_)
        if entry is not None and entry.status & HAVE_DATA:
            return False
        if len(state.in_flight) >= MAX_BLOCKS_IN_FLIGHT or hash_ in state.in_flight:
            return False
        if self.chain.invalid_reason(hash_) or hash_ in self.chain.orphans or self._recently_asked(hash_, now):
            return False
        self._ask(peer, hash_, now)
        return True

    # -- answers ---------------------------------------------------------------------------------
    def received(self, hash_: bytes) -> bool:
        """The block arrived (from anyone): no request for it is open any more.
        True if some peer had been asked for it."""
        asked = self.requests.pop(hash_, {})
        for peer in asked:
            self.peers[peer].in_flight.pop(hash_, None)
        return bool(asked)

    def asked(self, peer: int, hash_: bytes) -> bool:
        state = self.peers.get(peer)
        return state is not None and hash_ in state.in_flight

    def not_found(self, peer: int, hash_: bytes) -> None:
        """``peer`` says it does not have the block: ask it for nothing past it."""
        state = self.peers.get(peer)
        if state is None or state.in_flight.pop(hash_, None) is None:
            return
        self._forget_request(hash_, peer)
        entry = self.chain.index.get(hash_)
        if entry is not None and state.best is not None and \
                state.best.height >= entry.height and state.best.ancestor(entry.height) is entry:
            state.best = entry.parent

    # -- deciding ----------------------------------------------------------------------------------
    def next_requests(self, peer: int, now: float) -> list[bytes]:
        """The blocks to ask of ``peer`` now (each is then in flight from it)."""
        state = self.peers[peer]
        room = MAX_BLOCKS_IN_FLIGHT - len(state.in_flight)
        target = state.best
        if room <= 0 or target is None or target.failed or target.chainwork <= self.chain.tip.chainwork:
            return []
        path = self._path(state)
        asks = []
        for entry in path:
            if entry.failed:
                break
            if entry.status & HAVE_DATA or entry.hash in state.in_flight:
                continue
            if self._recently_asked(entry.hash, now):
                continue
            self._ask(peer, entry.hash, now)
            asks.append(entry.hash)
            if len(asks) == room:
                break
        return asks

    def timed_out(self, now: float) -> list[int]:
        """Peers holding a block request older than BLOCK_TIMEOUT."""
        return [peer for peer, state in self.peers.items()
                if any(now - asked > BLOCK_TIMEOUT for asked in state.in_flight.values())]

    def order(self) -> list[int]:
        """Peers in the order they are asked: outbound (preferred) first."""
        return sorted(self.peers, key=lambda p: (not self.peers[p].preferred, p))

    # -- internals ------------------------------------------------------------------------------
    def _recently_asked(self, hash_: bytes, now: float) -> bool:
        asked = self.requests.get(hash_)
        return bool(asked) and now - max(asked.values()) < STALL_SECONDS

    def _ask(self, peer: int, hash_: bytes, now: float) -> None:
        self.peers[peer].in_flight[hash_] = now
        self.requests.setdefault(hash_, {})[peer] = now

    def _forget_request(self, hash_: bytes, peer: int) -> None:
        asked = self.requests.get(hash_)
        if asked is not None:
            asked.pop(peer, None)
            if not asked:
                del self.requests[hash_]

    def _path(self, state: PeerDownload) -> list[BlockEntry]:
        """The lowest ``WINDOW`` blocks we lack a complete chain to, on the way to
        ``state.best``, from the cache while it leads there and is not used up."""
        path = state.path
        while path and path[0].chain_complete:
            path.pop(0)
        if state.path_to is not state.best or not path:
            walk, entry = [], state.best
            while entry is not None and not entry.chain_complete:
                walk.append(entry)
                entry = entry.parent
            walk.reverse()
            state.path, state.path_to = walk[:WINDOW], state.best
        return state.path

    def limits(self) -> list[tuple[str, int, int]]:
        states = self.peers.values()
        return [("per peer: blocks in flight", max((len(s.in_flight) for s in states), default=0),
                 MAX_BLOCKS_IN_FLIGHT),
                ("per peer: block path cache", max((len(s.path) for s in states), default=0), WINDOW),
                ("block requests", len(self.requests), MAX_BLOCKS_IN_FLIGHT * max(1, len(self.peers)))]
