"""The node: one chain state, one mempool, many peers; what to do with each message.

Theory of operation
-------------------
The aiohttp shell (``server.py``) owns the sockets and feeds this class
text frames (``on_frame``) and connection events; this class answers by
calling ``peer.send`` and publishing events. Nothing here awaits, so a test
can drive several nodes in one process and see exactly what happened.

*Gossip.* Every tx accepted to the mempool and every block connected is
announced at once by ``inv`` to each peer not known to have it (announcements
are batched per event-loop tick). A peer asks with ``getdata``; we never
echo an item back to a peer that sent or announced it.

*Sync* is headers first: after the handshake each side sends ``getheaders``
with its locator; headers are checked and added to the block index, and
the missing bodies are downloaded from every peer that has them, at most 16
in flight per peer, re-asked elsewhere after a timeout. Blocks may arrive in
any order: the chain state connects them once they are contiguous.

*Punishment* is decided from the typed result, never a message string:
malformed frames and consensus-invalid headers or blocks disconnect and ban
the peer; a policy refusal, an invalid loose transaction, an orphan, a
too-new or mutated block do not.
"""

import logging
import random
import time as _time
from collections import OrderedDict, deque

from chain.address import encode_address
from chain.block import Block
from chain.chainstate import HAVE_DATA, ChainState
from chain.errors import ORPHAN, PUNISH, REMEMBER, RuleError
from chain.tx import Tx

from . import messages as m
from .events import EventBus
from .mempool import Mempool
from .messages import Misbehaviour
from .peers import Peer

log = logging.getLogger("toychain")

BAN_SECONDS = 600
MAX_BLOCKS_IN_FLIGHT = 16
BLOCK_TIMEOUT = 20.0
MAX_KNOWN_ADDRS = 1000
MAX_RECENT_REJECTS = 100
MAX_OUTBOUND = 8
TX_REQUEST_SECONDS = 30.0
MAX_REJECTED_TXIDS = 50_000
USER_AGENT = "/toychain:0.1.0/"


class Node:
    def __init__(self, chain: ChainState, mempool: Mempool, events: EventBus | None = None,
                 listen: str | None = None, clock=_time.time, max_outbound: int = MAX_OUTBOUND):
        self.chain = chain
        self.net = chain.net
        self.mempool = mempool
        self.events = events or EventBus()
        self.listen = listen
        self.clock = clock
        self.max_outbound = max_outbound
        self.nonce = random.getrandbits(63)
        self.peers: dict[int, Peer] = {}
        self.bans: dict[str, tuple[float, str]] = {}
        self.known_addrs: OrderedDict[str, None] = OrderedDict()
        self.recent_rejects: deque[dict] = deque(maxlen=MAX_RECENT_REJECTS)
        self.wanted_blocks: OrderedDict[bytes, int] = OrderedDict()  # hash -> height
        self.requested: dict[bytes, int] = {}  # block hash -> peer id
        self.tx_requests: dict[bytes, float] = {}
        self.rejected_txids: set[bytes] = set()  # not fetched again until the tip moves
        self.dial = None          # set by the shell: dial(addr) opens an outbound connection
        self.schedule_flush = None  # set by the shell: run flush_announcements soon
        self.request_stop = None  # set by the shell: begin a clean shutdown
        self._next_peer_id = 0

    # -- peers -----------------------------------------------------------------------------
    def new_peer(self, addr: str, inbound: bool, send, close) -> Peer:
        self._next_peer_id += 1
        peer = Peer(self._next_peer_id, addr, inbound, send, close)
        self.peers[peer.id] = peer
        if not inbound:
            peer.send(self._version_msg())
        return peer

    def _version_msg(self) -> dict:
        tip = self.chain.tip
        return {"type": "version", "network": self.net.name,
                "genesis": self.net.genesis.hash.hex(), "protocol": m.PROTOCOL_VERSION,
                "nonce": self.nonce, "height": tip.height, "best": tip.hash.hex(),
                "user_agent": USER_AGENT, "listen": self.listen}

    def is_banned(self, key: str) -> bool:
        ban = self.bans.get(key)
        if ban and ban[0] <= self.clock():
            del self.bans[key]
            return False
        return ban is not None

    def peer_closed(self, peer: Peer, reason: str) -> None:
        if self.peers.pop(peer.id, None) is None:
            return
        for hash_ in peer.blocks_in_flight:
            self.requested.pop(hash_, None)
        if peer.handshake_done:
            log.info("peer %s disconnected: %s", peer.ban_key, reason)
            self.events.publish("peer_disconnected", id=peer.id, addr=peer.ban_key, reason=reason)
        self._schedule_downloads()

    def punish(self, peer: Peer, reason: str) -> None:
        self.bans[peer.ban_key] = (self.clock() + BAN_SECONDS, reason)
        log.warning("banning peer %s for %d s: %s", peer.ban_key, BAN_SECONDS, reason)
        peer.close(f"banned: {reason}")
        self.peer_closed(peer, f"banned: {reason}")

    def disconnect(self, key: str) -> bool:
        found = False
        for peer in list(self.peers.values()):
            if peer.ban_key == key or peer.addr == key:
                peer.close("disconnectnode")
                self.peer_closed(peer, "disconnectnode")
                found = True
        return found

    def connected_keys(self) -> set[str]:
        return {p.ban_key for p in self.peers.values()} | {p.addr for p in self.peers.values()}

    # -- frames ------------------------------------------------------------------------------
    def on_frame(self, peer: Peer, text: str) -> None:
        try:
            msg = m.parse(text)
        except Misbehaviour as error:
            self.punish(peer, str(error))
            return
        if msg is None or peer.id not in self.peers:
            return
        kind = msg["type"]
        if kind == "version":
            self._on_version(peer, msg)
        elif kind == "verack":
            self._on_verack(peer)
        elif peer.handshake_done:
            getattr(self, f"_on_{kind}")(peer, msg)

    def _on_version(self, peer: Peer, msg: dict) -> None:
        if peer.version is not None:
            return
        if msg["network"] != self.net.name or msg["genesis"] != self.net.genesis.hash:
            log.info("peer %s is on another network (%s): closing", peer.addr, msg["network"])
            peer.close("other network")
            self.peer_closed(peer, "other network")
            return
        if msg["nonce"] == self.nonce:
            peer.close("connected to self")
            self.peer_closed(peer, "connected to self")
            return
        peer.version = msg
        peer.listen = msg["listen"]
        peer.height = msg["height"]
        peer.user_agent = msg["user_agent"]
        if self.is_banned(peer.ban_key):
            peer.close("banned")
            self.peer_closed(peer, "banned")
            return
        if peer.inbound:
            peer.send(self._version_msg())
            peer.send({"type": "verack"})
        elif peer.verack_received:
            self._handshake_done(peer)

    def _on_verack(self, peer: Peer) -> None:
        if peer.version is None or peer.handshake_done:
            return
        peer.verack_received = True
        if not peer.inbound:
            peer.send({"type": "verack"})
        self._handshake_done(peer)

    def _handshake_done(self, peer: Peer) -> None:
        peer.handshake_done = True
        if peer.listen:
            self._learn_addr(peer.ban_key)
        log.info("peer %s connected (%s, height %d, %s)", peer.ban_key,
                 "inbound" if peer.inbound else "outbound", peer.height, peer.user_agent)
        self.events.publish("peer_connected", id=peer.id, addr=peer.ban_key,
                            inbound=peer.inbound, height=peer.height)
        peer.send(m.getheaders_msg(self.chain.locator()))
        if not peer.inbound:
            peer.send({"type": "getaddr"})

    # -- liveness and addresses ----------------------------------------------------------------
    def _on_ping(self, peer: Peer, msg: dict) -> None:
        peer.send({"type": "pong", "nonce": msg["nonce"]})

    def _on_pong(self, peer: Peer, msg: dict) -> None:
        if msg["nonce"] == peer.ping_nonce:
            peer.ping_nonce = None

    def _on_getaddr(self, peer: Peer, msg: dict) -> None:
        addrs = [a for a in self.known_addrs if a != peer.ban_key]
        if self.listen:
            addrs.append(self.listen)
        peer.send({"type": "addr", "addrs": addrs[-m.MAX_ADDRS:]})

    def _on_addr(self, peer: Peer, msg: dict) -> None:
        for addr in msg["addrs"]:
            self._learn_addr(addr)

    def _learn_addr(self, addr: str) -> None:
        if addr == self.listen or addr in self.known_addrs:
            return
        self.known_addrs[addr] = None
        while len(self.known_addrs) > MAX_KNOWN_ADDRS:
            self.known_addrs.popitem(last=False)
        outbound = sum(1 for p in self.peers.values() if not p.inbound)
        if (self.dial and outbound < self.max_outbound and addr not in self.connected_keys()
                and not self.is_banned(addr)):
            self.dial(addr)

    def tick(self) -> None:
        """Periodic housekeeping (the shell calls it every few seconds):
        pings, block request timeouts, expired bans and mempool entries."""
        now = self.clock()
        for peer in list(self.peers.values()):
            if not peer.handshake_done:
                continue
            if peer.ping_nonce is not None and now - peer.ping_sent > 60:
                peer.close("ping timeout")
                self.peer_closed(peer, "ping timeout")
                continue
            if peer.ping_nonce is None and now - peer.ping_sent > 30:
                peer.ping_nonce = random.getrandbits(63)
                peer.ping_sent = now
                peer.send({"type": "ping", "nonce": peer.ping_nonce})
            for hash_, asked in list(peer.blocks_in_flight.items()):
                if now - asked > BLOCK_TIMEOUT:
                    del peer.blocks_in_flight[hash_]
                    self.requested.pop(hash_, None)
        for txid in [t for t, asked in self.tx_requests.items() if now - asked > TX_REQUEST_SECONDS]:
            del self.tx_requests[txid]
        for key in [k for k in self.bans if self.bans[k][0] <= now]:
            del self.bans[key]
        self._after_mempool_removal(self.mempool.expire(now))
        self._schedule_downloads()

    # -- announcements --------------------------------------------------------------------------
    def announce(self, kind: str, hash_: bytes, skip: Peer | None = None) -> None:
        for peer in self.peers.values():
            if peer is skip or not peer.handshake_done or peer.knows(kind, hash_):
                continue
            peer.mark_known(kind, hash_)
            peer.pending_inv.append((kind, hash_))
        if self.schedule_flush:
            self.schedule_flush()
        else:
            self.flush_announcements()

    def flush_announcements(self) -> None:
        for peer in self.peers.values():
            if peer.pending_inv:
                items, peer.pending_inv = peer.pending_inv, []
                for start in range(0, len(items), m.MAX_INV):
                    peer.send(m.inv(items[start:start + m.MAX_INV]))

    # -- inventory ------------------------------------------------------------------------------
    def _on_inv(self, peer: Peer, msg: dict) -> None:
        want = []
        now = self.clock()
        for kind, hash_ in msg["items"]:
            peer.mark_known(kind, hash_)
            if kind == "tx":
                if (hash_ in self.mempool or hash_ in self.mempool.orphans
                        or hash_ in self.tx_requests or hash_ in self.rejected_txids):
                    continue
                self.tx_requests[hash_] = now
                want.append((kind, hash_))
            else:
                entry = self.chain.index.get(hash_)
                if entry is not None:
                    peer.height = max(peer.height, entry.height)
                if (entry is not None and entry.status & HAVE_DATA) or hash_ in self.requested \
                        or self.chain.invalid_reason(hash_) or hash_ in self.chain.orphans:
                    continue
                self.requested[hash_] = peer.id
                peer.blocks_in_flight[hash_] = now
                want.append((kind, hash_))
        if want:
            peer.send(m.inv(want, "getdata"))

    def _on_getdata(self, peer: Peer, msg: dict) -> None:
        missing = []
        for kind, hash_ in msg["items"]:
            item = self.mempool.get(hash_) if kind == "tx" else self.chain.get_block(hash_)
            if item is None:
                missing.append((kind, hash_))
                continue
            peer.mark_known(kind, hash_)
            peer.send(m.tx_msg(item) if kind == "tx" else m.block_msg(item))
        if missing:
            peer.send(m.inv(missing, "notfound"))

    def _on_notfound(self, peer: Peer, msg: dict) -> None:
        for kind, hash_ in msg["items"]:
            if kind == "block" and peer.blocks_in_flight.pop(hash_, None) is not None:
                self.requested.pop(hash_, None)
            elif kind == "tx":
                self.tx_requests.pop(hash_, None)
        self._schedule_downloads()

    # -- transactions ---------------------------------------------------------------------------
    def _on_tx(self, peer: Peer, msg: dict) -> None:
        tx = msg["tx"]
        peer.mark_known("tx", tx.txid)
        self.tx_requests.pop(tx.txid, None)
        try:
            self.accept_tx(tx, peer.ban_key, relay_skip=peer)
        except RuleError as error:
            if error.fault.tx & REMEMBER:
                if len(self.rejected_txids) >= MAX_REJECTED_TXIDS:
                    self.rejected_txids.clear()
                self.rejected_txids.add(tx.txid)
            if error.fault.tx & ORPHAN:
                self.mempool.add_orphan(tx, peer.ban_key)
                parents = [("tx", txin.prev_txid) for txin in tx.inputs
                           if txin.prev_txid not in self.mempool and txin.prev_txid not in self.tx_requests
                           and self.chain.store.tx_location(txin.prev_txid) is None]
                if parents:
                    for _, txid in parents:
                        self.tx_requests[txid] = self.clock()
                    peer.send(m.inv(parents, "getdata"))
            # No decodable loose tx is punished (the fault table): the peer may
            # simply have seen a different block or mempool than we have.

    def accept_tx(self, tx: Tx, source: str = "rpc", relay_skip: Peer | None = None) -> int:
        """Mempool acceptance, relay, events; raises RuleError (recorded) on refusal."""
        try:
            fee, evicted = self.mempool.accept(tx)
        except RuleError as error:
            if not (relay_skip is not None and error.fault.tx & ORPHAN):
                self._record_reject("tx", tx.txid, error, source)  # a peer's orphan is kept, not refused
            raise
        log.info("accepted tx %s from %s (fee %d units, %d bytes)", tx.txid.hex(), source, fee, tx.size)
        self.events.publish("tx_accepted", txid=tx.txid.hex(), fee=fee, size=tx.size, source=source)
        self._after_mempool_removal([(t, "size") for t in evicted])
        self.announce("tx", tx.txid, skip=relay_skip)
        for orphan, orphan_source in self.mempool.orphans_spending(tx.txid):
            try:
                self.accept_tx(orphan, orphan_source)
            except RuleError:
                pass  # recorded in recent rejects by the inner call
        return fee

    def _record_reject(self, kind: str, hash_: bytes, error: RuleError, source: str) -> None:
        log.info("rejected %s %s from %s: %s", kind, hash_.hex(), source, error)
        self.recent_rejects.appendleft({
            "time": int(self.clock()), "kind": kind, "id": hash_.hex(),
            "reject_reason": error.code, "message": error.message, "source": source})
        self.events.publish(f"{kind}_rejected", id=hash_.hex(), reject_reason=error.code,
                            message=error.message, source=source)

    def _after_mempool_removal(self, removed: list[tuple[Tx, str]]) -> None:
        for tx, reason in removed:
            self.events.publish("tx_removed", txid=tx.txid.hex(), reason=reason)

    # -- headers and blocks ----------------------------------------------------------------------
    def _on_getheaders(self, peer: Peer, msg: dict) -> None:
        headers = self.chain.headers_after(msg["locator"], msg["stop"], m.MAX_HEADERS)
        peer.send(m.headers_msg(headers))

    def _on_headers(self, peer: Peer, msg: dict) -> None:
        headers = msg["headers"]
        for previous, header in zip(headers, headers[1:]):
            if header.prev_hash != previous.hash:
                self.punish(peer, "headers do not link")
                return
        last = None
        for header in headers:
            try:
                last = self.chain.accept_header(header)
            except RuleError as error:
                if error.fault.block & ORPHAN:
                    peer.send(m.getheaders_msg(self.chain.locator()))
                elif error.fault.block & PUNISH:
                    self.punish(peer, f"invalid header {header.hash.hex()}: {error}")
                    return
                break
            peer.mark_known("block", header.hash)
            if last.hash not in self.chain.index:
                break  # not kept: the chain state's side entries are full (chain/chainstate.py)
            if not last.status & HAVE_DATA and not last.failed and last.hash not in self.wanted_blocks:
                self.wanted_blocks[last.hash] = last.height
        if last is not None:
            peer.height = max(peer.height, last.height)
            if len(headers) == m.MAX_HEADERS and last.hash in self.chain.index:
                peer.send(m.getheaders_msg([last.hash] + self.chain.locator()))
        self._schedule_downloads()

    def _schedule_downloads(self) -> None:
        """Ask each peer for wanted bodies it can serve, lowest heights first,
        keeping at most MAX_BLOCKS_IN_FLIGHT requests open per peer. Only the
        front of ``wanted_blocks`` is walked: bodies leave it as they arrive."""
        peers = sorted((p for p in self.peers.values() if p.handshake_done),
                       key=lambda p: len(p.blocks_in_flight))
        now = self.clock()
        for peer in peers:
            room = MAX_BLOCKS_IN_FLIGHT - len(peer.blocks_in_flight)
            ask, done = [], []
            for hash_, height in self.wanted_blocks.items():
                if room <= 0 or height > peer.height:
                    break
                if self._have_block(hash_):
                    done.append(hash_)
                elif hash_ not in self.requested:
                    self.requested[hash_] = peer.id
                    peer.blocks_in_flight[hash_] = now
                    ask.append(("block", hash_))
                    room -= 1
            for hash_ in done:
                del self.wanted_blocks[hash_]
            if ask:
                peer.send(m.inv(ask, "getdata"))

    def _have_block(self, hash_: bytes) -> bool:
        entry = self.chain.index.get(hash_)
        return entry is None or bool(entry.status & HAVE_DATA) or entry.failed

    def _on_block(self, peer: Peer, msg: dict) -> None:
        block = msg["block"]
        peer.mark_known("block", block.hash)
        requested = peer.blocks_in_flight.pop(block.hash, None) is not None
        if requested:
            self.requested.pop(block.hash, None)
        outcome = self.accept_block(block, peer.ban_key, requested)
        if outcome.status == "orphan":
            peer.send(m.getheaders_msg(self.chain.locator()))
        elif outcome.error is not None and outcome.error.fault.block & PUNISH:
            self.punish(peer, f"invalid block {block.hash.hex()}: {outcome.error}")
            return
        entry = self.chain.index.get(block.hash)
        if entry is not None:
            peer.height = max(peer.height, entry.height)
        self._schedule_downloads()

    def accept_block(self, block: Block, source: str = "rpc", requested: bool = True):
        """Process a block from anywhere; update the mempool, relay, publish events."""
        outcome = self.chain.process_block(block, requested, source)
        self.wanted_blocks.pop(block.hash, None)
        for new in outcome.connected:  # relay first: the next hop should not wait for our bookkeeping
            self.announce("block", new.hash)
        if outcome.error is not None and outcome.status != "orphan":
            self._record_reject("block", block.hash, outcome.error, source)
        for gone in outcome.disconnected:
            log.info("disconnected block %s", gone.hash.hex())
            self.events.publish("block_disconnected", hash=gone.hash.hex(),
                                txids=[tx.txid.hex() for tx in gone.txs])
        for new in outcome.connected:
            entry = self.chain.index[new.hash]
            log.info("connected block %s at height %d (%d txs) from %s", new.hash.hex(),
                     entry.height, len(new.txs), source)
            self.events.publish("block_connected", hash=new.hash.hex(), height=entry.height,
                                prev_hash=new.header.prev_hash.hex(), time=new.header.time,
                                miner=_miner_address(new), txids=[tx.txid.hex() for tx in new.txs],
                                source=source)
        if outcome.connected or outcome.disconnected:
            self.rejected_txids.clear()  # what was invalid may be valid on the new tip
            removed = self.mempool.update_for_chain(outcome.connected, outcome.disconnected)
            self._after_mempool_removal(removed)
        return outcome


def _miner_address(block: Block) -> str | None:
    outputs = block.txs[0].outputs
    return encode_address(outputs[0].owner) if outputs else None
