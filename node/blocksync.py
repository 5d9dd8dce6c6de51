"""Block download: which block bodies to ask which peer for.

Headers come first; every header whose body we lack is *wanted*. Bodies are
asked of every peer that has them, lowest heights first, at most
``MAX_BLOCKS_IN_FLIGHT`` per peer, and re-asked elsewhere after
``BLOCK_TIMEOUT`` seconds. An announced block (``inv``) is asked for at once.
"""

from collections import OrderedDict

from chain.chainstate import HAVE_DATA, ChainState

MAX_BLOCKS_IN_FLIGHT = 16
BLOCK_TIMEOUT = 20.0


class BlockDownload:
    def __init__(self, chain: ChainState):
        self.chain = chain
        self.wanted: OrderedDict[bytes, int] = OrderedDict()  # hash -> height
        self.requested: dict[bytes, int] = {}  # hash -> peer id
        self.in_flight: dict[int, dict[bytes, float]] = {}  # peer id -> hash -> when asked

    def add_peer(self, peer: int) -> None:
        self.in_flight[peer] = {}

    def remove_peer(self, peer: int) -> None:
        for hash_ in self.in_flight.pop(peer, {}):
            self.requested.pop(hash_, None)

    def header_added(self, entry) -> None:
        if not entry.status & HAVE_DATA and not entry.failed and entry.hash not in self.wanted:
            self.wanted[entry.hash] = entry.height

    def announced(self, peer: int, hash_: bytes, now: float) -> bool:
        """An ``inv`` of a block: True if it should be asked of ``peer`` now."""
        entry = self.chain.index.get(hash_)
        if (entry is not None and entry.status & HAVE_DATA) or hash_ in self.requested \
                or self.chain.invalid_reason(hash_) or hash_ in self.chain.orphans:
            return False
        self._ask(peer, hash_, now)
        return True

    def _ask(self, peer: int, hash_: bytes, now: float) -> None:
        self.requested[hash_] = peer
        self.in_flight[peer][hash_] = now

    def answered(self, peer: int, hash_: bytes) -> bool:
        """A block or a ``notfound`` from ``peer``: True if we had asked it."""
        if self.in_flight.get(peer, {}).pop(hash_, None) is not None:
            self.requested.pop(hash_, None)
            return True
        return False

    def block_processed(self, hash_: bytes) -> None:
        self.wanted.pop(hash_, None)

    def expire(self, now: float) -> None:
        for flights in self.in_flight.values():
            for hash_, asked in list(flights.items()):
                if now - asked > BLOCK_TIMEOUT:
                    del flights[hash_]
                    self.requested.pop(hash_, None)

    def schedule(self, heights: dict[int, int], now: float) -> dict[int, list[bytes]]:
        """Blocks to ask of each peer (``heights``: peer id -> its height) now.
        Only the front of ``wanted`` is walked: bodies leave it as they arrive."""
        asks: dict[int, list[bytes]] = {}
        for peer in sorted(heights, key=lambda p: len(self.in_flight[p])):
            room = MAX_BLOCKS_IN_FLIGHT - len(self.in_flight[peer])
            ask, done = [], []
            for hash_, height in self.wanted.items():
                if room <= 0 or height > heights[peer]:
                    break
                if self._have(hash_):
                    done.append(hash_)
                elif hash_ not in self.requested:
                    self._ask(peer, hash_, now)
                    ask.append(hash_)
                    room -= 1
            for hash_ in done:
                del self.wanted[hash_]
            if ask:
                asks[peer] = ask
        return asks

    def _have(self, hash_: bytes) -> bool:
        entry = self.chain.index.get(hash_)
        return entry is None or bool(entry.status & HAVE_DATA) or entry.failed
