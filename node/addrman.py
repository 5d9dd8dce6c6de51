"""The address book and the dialler: whom to connect to, and when.

Two kinds of outbound peers:

* *manual* peers, named by the operator (``--peer``, ``addnode``): dialled at
  once and, when ``persistent``, dialled again after each failure or
  disconnection with a backoff of 1, 2, 4 ... up to ``MAX_BACKOFF`` seconds;
* *discovered* peers, learnt from ``addr`` messages and from the ``listen``
  of inbound peers: dialled once when learnt while the node has fewer than
  its outbound limit of outbound peers.
"""

from collections import OrderedDict
from dataclasses import dataclass

MAX_KNOWN_ADDRS = 1000
MAX_BACKOFF = 30.0


@dataclass
class Manual:
    persistent: bool
    next_try: float | None  # None: connected or being dialled
    backoff: float = 1.0


class AddrBook:
    def __init__(self):
        self.known: OrderedDict[str, None] = OrderedDict()
        self.manual: dict[str, Manual] = {}

    def __iter__(self):
        return iter(self.known)

    def learn(self, addr: str) -> bool:
        """Remember ``addr``; True if it was new."""
        if addr in self.known:
            return False
        self.known[addr] = None
        while len(self.known) > MAX_KNOWN_ADDRS:
            self.known.popitem(last=False)
        return True

    # -- manual peers ---------------------------------------------------------------------
    def add_manual(self, addr: str, persistent: bool) -> None:
        """Dial ``addr`` now (see ``due``)."""
        self.manual[addr] = Manual(persistent, 0.0)

    def due(self, now: float) -> list[str]:
        """Manual peers to dial now; each is then waiting for its outcome."""
        ready = [a for a, m in self.manual.items() if m.next_try is not None and m.next_try <= now]
        for addr in ready:
            self.manual[addr].next_try = None
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
