"""One connected peer, as the node sees it: the session state machine.

No I/O: the node creates a ``Peer`` when the shell reports a new connection
and forgets it when the shell reports it closed. A peer goes through

    opened -> version received -> verack received -> handshake done

(the dialler sends ``version`` first; the listener answers ``version`` +
``verack``; the dialler answers ``verack``). Before the handshake is done
only ``version`` and ``verack`` are acted on.

The *ban key* identifies a peer process, not a socket: an outbound peer is
the "host:port" we dialled; an inbound one is its host with the port it
announced in ``listen`` (its source port if none), so one misbehaving
process on 127.0.0.1 does not get every other local node banned.
"""

from collections import OrderedDict

# What a peer is known to have (it announced or sent it, or we announced it to
# it), so we never announce it back. Forgetting an old entry costs at most one
# needless announcement; 5,000 hashes is about a full block of txs (~0.5 MB).
KNOWN_LIMIT = 5_000


class Peer:
    def __init__(self, peer_id: int, addr: str, inbound: bool, now: float):
        self.id = peer_id
        self.addr = addr
        self.inbound = inbound
        self.connected_since = int(now)
        self.version: dict | None = None
        self.verack_received = False
        self.handshake_done = False
        self.height = 0
        self.user_agent = ""
        self.listen: str | None = None
        self.known: OrderedDict[bytes, None] = OrderedDict()  # tx and block hashes, oldest first
        self.pending_inv: list[tuple[str, bytes]] = []
        self.ping_nonce: int | None = None
        self.ping_sent = now
        self.queued = 0  # frames handed to the shell and not yet written

    @property
    def ban_key(self) -> str:
        if self.inbound and self.listen:
            host = self.addr.rsplit(":", 1)[0]
            return f"{host}:{self.listen.rsplit(':', 1)[1]}"
        return self.addr

    def mark_known(self, kind: str, hash_: bytes) -> None:
        self.known[hash_] = None
        self.known.move_to_end(hash_)
        if len(self.known) > KNOWN_LIMIT:
            self.known.popitem(last=False)

    def knows(self, kind: str, hash_: bytes) -> bool:
        return hash_ in self.known

    def __repr__(self) -> str:
        return f"Peer({self.id}, {self.addr}, {'in' if self.inbound else 'out'})"
