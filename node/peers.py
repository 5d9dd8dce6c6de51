"""One connected peer, as the node sees it: handshake progress, what it is
known to have, what we asked it for. No I/O: ``send`` and ``close`` are
callables given by the connection that owns the socket.

The *ban key* identifies a peer process, not a socket: an outbound peer is
the "host:port" we dialled; an inbound one is its host with the port it
announced in ``listen`` (its source port if none), so one misbehaving
process on 127.0.0.1 does not get every other local node banned.
"""

import time
from collections import OrderedDict

KNOWN_LIMIT = 100_000


class Peer:
    def __init__(self, peer_id: int, addr: str, inbound: bool, send, close):
        self.id = peer_id
        self.addr = addr
        self.inbound = inbound
        self.send = send
        self.close = close
        self.connected_since = int(time.time())
        self.version: dict | None = None
        self.verack_received = False
        self.handshake_done = False
        self.height = 0
        self.user_agent = ""
        self.listen: str | None = None
        self.known: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self.pending_inv: list[tuple[str, bytes]] = []
        self.blocks_in_flight: dict[bytes, float] = {}
        self.ping_nonce: int | None = None
        self.ping_sent = 0.0

    @property
    def ban_key(self) -> str:
        if self.inbound and self.listen:
            host = self.addr.rsplit(":", 1)[0]
            return f"{host}:{self.listen.rsplit(':', 1)[1]}"
        return self.addr

    def mark_known(self, kind: str, hash_: bytes) -> None:
        key = (kind, hash_)
        self.known[key] = None
        self.known.move_to_end(key)
        if len(self.known) > KNOWN_LIMIT:
            self.known.popitem(last=False)

    def knows(self, kind: str, hash_: bytes) -> bool:
        return (kind, hash_) in self.known

    def __repr__(self) -> str:
        return f"Peer({self.id}, {self.addr}, {'in' if self.inbound else 'out'})"
