"""The address book and the dialler: whom to connect to, and when.

Theory of operation
-------------------
Two kinds of outbound peers:

* *manual* peers, named by the operator (``--peer``, ``addnode``): dialled
  at once and, when ``persistent``, dialled again after each failure or
  disconnection with a backoff of 1, 2, 4 ... up to ``MAX_BACKOFF`` seconds.
  At most ``MAX_MANUAL_PEERS`` of them.
* *discovered* peers, from the address book. The book holds the last
  ``MAX_KNOWN_ADDRS`` addresses learnt from ``addr`` messages and from the
  ``listen`` of inbound peers, oldest out first. On each timer tick, if the
  node has fewer discovered outbound peers than its limit, *counting the
  dials still in progress*, it dials one address it is not connected to,
  not dialling, not banned and not tried in the last ``RETRY_SECONDS``.
  An address the operator disconnected (``disconnectnode``) is never
  dialled from the book again: the operator wanted it gone (the demos cut
  the network that way, for as long as a class needs).
  So an ``addr`` message full of addresses makes the node dial at most one
  a second, never past the limit.

Learning is rate-limited per peer, as Core does: a peer's ``addr`` entries
cost a token each from a bucket that refills at ``ADDR_RATE`` per second up
to ``MAX_ADDR_TOKENS``; when we send a peer ``getaddr`` it gets
``MAX_ADDRS`` more tokens for the answer. Entries beyond its tokens are
ignored, not punished.
"""

import math
from collections import OrderedDict
from dataclasses import dataclass

from .messages import MAX_ADDRS

MAX_KNOWN_ADDRS = 1_000     # addresses remembered; the oldest goes first
MAX_MANUAL_PEERS = 64       # --peer / addnode entries (Core lets 8 of them connect at once)
MAX_BACKOFF = 30.0          # seconds between redials of a persistent manual peer, at most
RETRY_SECONDS = 60.0        # a discovered address is not dialled again sooner
ADDR_RATE = 0.1             # addr entries per second a peer may make us process (Core's)
MAX_ADDR_TOKENS = MAX_ADDRS  # the bucket's size: one full answer to getaddr (Core's 1,000)


@dataclass
class Manual:
    persistent: bool
    next_try: float | None  # None: connected or being dialled
    backoff: float = 1.0


class TokenBucket:
    """Tokens that refill at ``ADDR_RATE`` per second, up to ``MAX_ADDR_TOKENS``."""

    def __init__(self, now: float, tokens: float = 1.0):
        self.tokens = tokens
        self.at = now

    def take(self, now: float) -> bool:
        self.tokens = min(MAX_ADDR_TOKENS, self.tokens + (now - self.at) * ADDR_RATE)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def grant(self, tokens: int) -> None:
        self.tokens = min(MAX_ADDR_TOKENS, self.tokens + tokens)


class AddrBook:
    def __init__(self):
        self.known: OrderedDict[str, float] = OrderedDict()  # addr -> when we last dialled it (inf: held)
        self.manual: dict[str, Manual] = {}
        self.dialling: dict[str, bool] = {}  # dials in progress: addr -> is it a manual peer

    def __iter__(self):
        return iter(self.known)

    def learn(self, addr: str) -> None:
        if addr not in self.known:
            self.known[addr] = float("-inf")
            while len(self.known) > MAX_KNOWN_ADDRS:
                self.known.popitem(last=False)

    def hold(self, addr: str) -> None:
        """The operator disconnected ``addr``: never dial it from the book again
        (only ``addnode`` does), even if a peer tells us of it later."""
        self.learn(addr)
        self.known[addr] = math.inf

    # -- discovered peers ---------------------------------------------------------------
    def discovered_dials(self) -> int:
        return sum(1 for manual in self.dialling.values() if not manual)

    def pick(self, now: float, skip) -> str | None:
        """An address to dial now (``skip(addr)`` rules out connected, banned ...)."""
        for addr, tried in self.known.items():
            if now - tried >= RETRY_SECONDS and addr not in self.dialling and not skip(addr):
                self.known[addr] = now
                self.dialling[addr] = False
                return addr
        return None

    def dial_over(self, addr: str) -> bool:
        """A dial ended (connected or failed): True if it was a manual peer's."""
        return self.dialling.pop(addr, addr in self.manual)

    # -- manual peers ---------------------------------------------------------------------
    def add_manual(self, addr: str, persistent: bool) -> bool:
        """Dial ``addr`` now (see ``due``); False if the list is full."""
        if addr not in self.manual and len(self.manual) >= MAX_MANUAL_PEERS:
            return False
        self.manual[addr] = Manual(persistent, 0.0)
        return True

    def due(self, now: float) -> list[str]:
        """Manual peers to dial now; each is then waiting for its outcome."""
        ready = [a for a, m in self.manual.items() if m.next_try is not None and m.next_try <= now]
        for addr in ready:
            self.manual[addr].next_try = None
            self.dialling[addr] = True
        return ready

    def manual_connected(self, addr: str) -> None:
        if addr in self.manual:
            self.manual[addr].backoff = 1.0

    def manual_lost(self, addr: str, now: float) -> None:
        """A dial to a manual peer failed or its connection ended: try again later."""
        entry = self.manual.get(addr)
        if entry is None:
            return
        if not entry.persistent:
            del self.manual[addr]
            return
        entry.next_try = now + entry.backoff
        entry.backoff = min(entry.backoff * 2, MAX_BACKOFF)

    def limits(self, max_outbound: int, discovered_outbound: int) -> list[tuple[str, int, int]]:
        return [("address book", len(self.known), MAX_KNOWN_ADDRS),
                ("manual peers", len(self.manual), MAX_MANUAL_PEERS),
                ("discovered outbound peers, dials included", discovered_outbound, max_outbound),
                ("dials in progress", len(self.dialling), max_outbound + MAX_MANUAL_PEERS)]
