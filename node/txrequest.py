"""Which transactions to ask which peer for: Bitcoin Core's TxRequestTracker, small.

Theory of operation
-------------------
Every ``inv`` of a tx we do not have is an *announcement*: (peer, txid).
Each is in one of three states:

    CANDIDATE  announced, not asked for yet
    REQUESTED  asked of that peer, waiting until its expiry
    COMPLETED  that peer answered (the tx, or notfound) or let the request expire

The rules (Core's ``txrequest.h``, with its reasons):

* **One request per txid at a time**: a tx is never asked of two peers at
  once, so honest relay costs one copy.
* **Never twice from the same peer**: a peer whose request failed is not
  asked again for that tx, so an attacker cannot keep a tx to itself by
  announcing it again.
* **A failed request moves on**: ``notfound``, a request older than
  ``TX_REQUEST_TIMEOUT``, or the peer leaving makes the next candidate
  requestable at once. The first to announce gets the first request, but
  only one.
* **Preferred peers first**: among candidates, outbound peers (we chose
  them, so an attacker controls them less easily) come before inbound ones;
  within a class the order is a random priority drawn at announcement, so
  it cannot be bought by announcing first or often. (Core also delays
  inbound peers' announcements by 2 s; we do not, as PROTOCOL.md asks a tx
  to cross each hop within 100 ms.)
* **Bounded per peer**: at most ``MAX_PEER_ANNOUNCEMENTS`` tracked
  announcements (more are ignored) and at most ``MAX_PEER_TX_IN_FLIGHT``
  requests waiting for an answer; a tx whose best candidate is full goes
  to the next one, or waits for a free slot: each slot that frees goes to
  the oldest tx waiting for that peer, so an answer costs one choice
  however many txs wait (a peer that announced 5,000 txs and answers
  ``notfound`` one at a time makes no more work than an honest one).
* **Forgotten when done**: once the tx is in hand (accepted, refused or
  kept as an orphan) every announcement of it goes (``forget``); so do a
  txid's announcements when only completed ones remain.

The tracker does no I/O: ``requests(now)`` says which txids to ask of which
peer now, and each is then REQUESTED.

``RejectFilter`` is Core's recent-rejects filter: the txids of txs from
peers that we refused for a reason the fault table says to ``REMEMBER``,
so that they are not fetched again; it is emptied when the tip moves (what
was invalid may be valid on the new tip).
"""

from dataclasses import dataclass

MAX_PEER_ANNOUNCEMENTS = 5_000   # tracked per peer (Core's MAX_PEER_TX_ANNOUNCEMENTS)
MAX_PEER_TX_IN_FLIGHT = 100      # requests per peer awaiting an answer (Core's MAX_PEER_TX_REQUEST_IN_FLIGHT)
TX_REQUEST_TIMEOUT = 60.0        # seconds a peer gets to answer (Core's GETDATA_TX_INTERVAL)

# Refused txids remembered until the tip moves, the oldest forgotten first: a
# forgotten one costs one more download and check; 10,000 is about the spam two
# full blocks' worth of txs would bring between two tips (Core keeps 120,000).
MAX_REJECTED_TXIDS = 10_000

CANDIDATE, REQUESTED, COMPLETED = "candidate", "requested", "completed"


@dataclass(slots=True)
class Announcement:
    preferred: bool
    priority: float
    state: str = CANDIDATE
    expiry: float = 0.0


class TxRequestTracker:
    def __init__(self, rng):
        self.rng = rng
        self.by_txid: dict[bytes, dict[int, Announcement]] = {}
        self.by_peer: dict[int, dict[bytes, None]] = {}     # peer -> its announced txids
        self.requested: dict[int, dict[bytes, None]] = {}   # peer -> txids in flight from it
        self._dirty: dict[bytes, None] = {}    # txids whose next request may have changed
        self._blocked: dict[int, dict[bytes, None]] = {}    # peer -> txids waiting for a slot in it
        self._freed: dict[int, None] = {}      # peers with a slot freed since the last requests() (one entry per peer at most)

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.by_txid

    # -- what happened -----------------------------------------------------------------------
    def add_peer(self, peer: int) -> None:
        self.by_peer[peer], self.requested[peer], self._blocked[peer] = {}, {}, {}

    def announced(self, peer: int, txid: bytes, preferred: bool) -> bool:
        """``peer`` announced ``txid``: track it (False if over the peer's cap)."""
        anns = self.by_txid.get(txid)
        if anns is not None and peer in anns:
            return True
        if len(self.by_peer[peer]) >= MAX_PEER_ANNOUNCEMENTS:
            return False
        self.by_txid.setdefault(txid, {})[peer] = Announcement(preferred, self.rng.random())
        self.by_peer[peer][txid] = None
        self._dirty[txid] = None
        return True

    def received(self, peer: int, txid: bytes) -> None:
        """``peer`` answered for ``txid`` (the tx or notfound): its announcement is done."""
        ann = self.by_txid.get(txid, {}).get(peer)
        if ann is not None and ann.state != COMPLETED:
            self._complete(peer, txid, ann)

    def forget(self, txid: bytes) -> None:
        """The tx is no longer needed: drop every announcement of it."""
        for peer, ann in self.by_txid.pop(txid, {}).items():
            self.by_peer[peer].pop(txid, None)
            self._blocked[peer].pop(txid, None)
            if ann.state == REQUESTED:
                self._release(peer, txid)
        self._dirty.pop(txid, None)

    def remove_peer(self, peer: int) -> None:
        for txid in self.by_peer.pop(peer, {}):
            anns = self.by_txid[txid]
            del anns[peer]
            if not anns:
                del self.by_txid[txid]
            else:
                self._dirty[txid] = None
        self.requested.pop(peer, None)
        self._blocked.pop(peer, None)
        self._freed.pop(peer, None)

    # -- deciding -------------------------------------------------------------------------------
    def expire(self, now: float) -> None:
        """Requests unanswered for TX_REQUEST_TIMEOUT fail (the shell's timer calls it)."""
        for peer, txids in self.requested.items():
            for txid in [t for t in txids if self.by_txid[t][peer].expiry <= now]:
                self._complete(peer, txid, self.by_txid[txid][peer])

    def requests(self, now: float) -> dict[int, list[bytes]]:
        """Choose what to ask of whom now; each choice is then REQUESTED.

        First the txids whose announcements changed; then, for each peer that
        freed a slot, the txids waiting for one in it, oldest first, until it
        is full again: a freed slot costs about one choice, however many
        txids wait (re-choosing all of them at every answer cost a node
        thousands of choices per ``notfound`` from a peer that announced
        5,000 txids)."""
        if not self._dirty and not self._freed:
            return {}  # the common case: nothing changed since the last call
        asks: dict[int, list[bytes]] = {}
        dirty, self._dirty = self._dirty, {}
        for txid in dirty:
            self._choose(txid, now, asks)
        freed, self._freed = self._freed, {}
        for peer in freed:
            waiting = self._blocked.get(peer)  # None: the peer has left
            while waiting and len(self.requested[peer]) < MAX_PEER_TX_IN_FLIGHT:
                txid = next(iter(waiting))
                del waiting[txid]
                self._choose(txid, now, asks)
        return asks

    def _choose(self, txid: bytes, now: float, asks: dict[int, list[bytes]]) -> None:
        """Ask the best candidate with a free slot for ``txid``, unless a request
        is in flight; with none free, it waits in every candidate's queue."""
        anns = self.by_txid.get(txid)
        if anns is None:
            return
        candidates = []
        for peer, a in anns.items():  # one pass: a request in flight, else the candidates
            if a.state == REQUESTED:
                return
            if a.state == CANDIDATE:
                candidates.append((not a.preferred, a.priority, peer))
        if not candidates:
            self.forget(txid)  # every announcer failed: forget them all (Core)
            return
        candidates.sort()
        chosen = next((peer for _, _, peer in candidates
                       if len(self.requested[peer]) < MAX_PEER_TX_IN_FLIGHT), None)
        if chosen is None:
            for _, _, peer in candidates:
                self._blocked[peer][txid] = None
            return
        ann = anns[chosen]
        ann.state, ann.expiry = REQUESTED, now + TX_REQUEST_TIMEOUT
        self.requested[chosen][txid] = None
        asks.setdefault(chosen, []).append(txid)

    def _complete(self, peer: int, txid: bytes, ann: Announcement) -> None:
        if ann.state == REQUESTED:
            self._release(peer, txid)
        ann.state = COMPLETED
        self._dirty[txid] = None

    def _release(self, peer: int, txid: bytes) -> None:
        """A request of ``peer`` is over: a slot is free for a txid waiting on it."""
        self.requested[peer].pop(txid, None)
        if self._blocked[peer]:
            self._freed[peer] = None

    # -- inspection ----------------------------------------------------------------------------
    def tracked(self, peer: int) -> int:
        return len(self.by_peer.get(peer, ()))

    def in_flight(self, peer: int) -> int:
        return len(self.requested.get(peer, ()))

    def limits(self) -> list[tuple[str, int, int]]:
        def largest(table) -> int:
            return max(map(len, table.values()), default=0)
        return [("per peer: tx announcements", largest(self.by_peer), MAX_PEER_ANNOUNCEMENTS),
                ("per peer: tx requests in flight", largest(self.requested), MAX_PEER_TX_IN_FLIGHT),
                ("per peer: txs waiting for a slot", largest(self._blocked), MAX_PEER_ANNOUNCEMENTS),
                ("txids tracked", len(self.by_txid), MAX_PEER_ANNOUNCEMENTS * max(1, len(self.by_peer)))]


class RejectFilter:
    def __init__(self):
        self.txids: dict[bytes, None] = {}  # oldest first

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.txids

    def __len__(self) -> int:
        return len(self.txids)

    def add(self, txid: bytes) -> None:
        self.txids[txid] = None
        if len(self.txids) > MAX_REJECTED_TXIDS:
            del self.txids[next(iter(self.txids))]

    def clear(self) -> None:
        self.txids.clear()
