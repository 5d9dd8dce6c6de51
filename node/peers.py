"""One connected peer, as the node sees it: the session state machine.

No I/O: the node creates a ``Peer`` when the shell reports a new connection
and forgets it when the shell reports it closed. A peer goes through

    opened -> version received -> verack received -> handshake done

(the dialler sends ``version`` first; the listener answers ``version`` +
``verack``; the dialler answers ``verack``). Before the handshake is done
only ``version`` and ``verack`` are acted on.

While the peer's unwritten bytes are over its send budget, or an answer to
its ``getdata`` is still being served, the node reads nothing more from it.

The *ban key* names a peer process, not a socket: an outbound peer is the
"host:port" we dialled; an inbound one is its host with the port it
announced in ``listen`` (its source port if none), so one misbehaving
process on 127.0.0.1 does not get every other local node banned. Whether a
ban really falls on a claimed address is decided in ``banlist.py``.
"""

from collections import OrderedDict

from .addrman import TokenBucket
from .messages import MAX_FRAME_BYTES

# What a peer is known to have (it announced or sent it, or we announced it to
# it), so we never announce it back. Forgetting an old entry costs at most one
# needless announcement; 5,000 hashes is about a full block of txs (~0.5 MB).
KNOWN_LIMIT = 5_000
# Bytes queued for a peer and not yet written to its socket. At SEND_BUDGET the
# node stops reading the peer, serving its getdata and queueing announcements
# for it (they are dropped: it is not reading anyway) until it drains, as Core
# pauses a peer whose send buffer is full. So a peer that asks and never reads
# can make us hold at most the budget plus what one of its messages makes us
# send: one frame (a block) and a few small ones; that is MAX_SEND_BYTES.
SEND_BUDGET = 5_000_000
MAX_SEND_BYTES = SEND_BUDGET + MAX_FRAME_BYTES + 64 * 1024
# Distinct items of one getdata we serve (the rest are ignored, not punished):
# a Toychain node asks for at most 16 blocks and 100 txs of a peer at a time.
MAX_GETDATA_ITEMS = 1_000


class Peer:
    def __init__(self, peer_id: int, addr: str, inbound: bool, now: float):
        self.id = peer_id
        self.addr = addr
        self.inbound = inbound
        self.opened_at = now
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
        self.send_queued = 0  # bytes handed to the shell and not yet written
        self.getdata: OrderedDict[tuple[str, bytes], None] = OrderedDict()  # items still to serve
        self.manual = False  # an outbound connection to a --peer / addnode address
        self.addr_tokens = TokenBucket(now)  # how many addr entries it may make us process
        self.getaddr_answered = False

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
