"""The node: one chain state, one mempool, many peers; what to do with each message.

Theory of operation
-------------------
The shell (``server.py`` over real sockets, or the simulator) owns the
connections and tells the node what happened: a connection opened or closed,
a text frame arrived, a frame was written, a timer fired. The node decides
and leaves *actions* (``actions.py``: send, close, dial, publish) in its
outbox, which the shell empties with ``take_actions``. Nothing here awaits
or touches a socket, so a test can run many nodes in one process and see
exactly what each one did.

The decisions are split by concern into plain classes, each fed the current
time and saying what to do; each module opens with its rules:

    peers.Peer                    one connection: handshake, ping, what it knows,
                                  its send budget in bytes
    txrequest.TxRequestTracker    which tx to ask of which peer (Core's rules)
    blocksync.BlockDownload       which block bodies to ask of which peer, whom to drop
    addrman.AddrBook              addresses, rate-limited addr, whom to dial
    banlist.BanList, ListenClaims who is refused, and whose address a ban falls on
    orphans.TxOrphanage           txs waiting for their parents

This class glues them: it parses each frame (``messages.parse``) and
dispatches it by ``HANDLERS``, an explicit table from message type to
handler. Messages other than ``version``/``verack`` are ignored until the
handshake is done. ``timer`` (every ``TIMER_SECONDS``) enforces the
timeouts: handshake, ping, block and tx requests, bans, orphans, mempool.
Every container is bounded; ``limits`` lists them with their bounds.

*Gossip.* Every tx accepted to the mempool and every block connected is
announced by ``inv`` to each peer not known to have it. Announcements are
batched: a shell that sets ``flush_at`` (the aiohttp shell and the
simulator) is asked to call ``flush`` at a time the node picks: at once
when the last batch went out an interval ago or more, else that long
after it. So a lone tx is announced at once, and under load each peer gets
at most one ``inv`` per interval holding everything since (Core trickles
txs every few seconds; we stay far within the 100 ms of section 7), which
also makes the ``getdata`` answers bigger and fewer. The interval adapts
to the load: ``INV_INTERVAL`` while batches hold one tx, doubling with each
batch of ``INV_BUSY_ITEMS`` or more up to ``MAX_INV_INTERVAL``, halving
with each smaller one (under a stream of txs the frames per relayed tx
fall, for a few milliseconds more per hop). Without ``flush_at``
they go out with the actions of the event that made them. A peer asks with
``getdata``; we never echo an item back to a peer that sent or announced it.

*Logging.* Blocks, peers and bans are logged at info level; txs at debug
(one line per tx cost a relaying node a tenth of its CPU), summed up at
info once per ``SUMMARY_SECONDS`` in which there were any.

*Punishment* comes from two places only: a frame that breaks the protocol
(``messages.Misbehaviour``, or a frame the shell could not hand over as
text: ``bad_frame``) and a header or block whose reject code the fault
table marks ``PUNISH`` (``error.fault.block & PUNISH``). A policy
refusal, an invalid loose transaction, an orphan, a too-new or mutated
block are never punished.
"""

import logging
import random
import time as _time
from collections import Counter

from chain.address import encode_address
from chain.block import Block
from chain.chainstate import ChainState
from chain.errors import ORPHAN, PUNISH, REMEMBER, RuleError
from chain.tx import Tx

from . import messages as m
from . import wirejson
from .actions import Action, Close, Dial, Publish, Send, Stop
from .addrman import AddrBook
from .banlist import MAX_BANS, BanList, ListenClaims
from .blocksync import BlockDownload
from .mempool import Mempool
from .messages import Misbehaviour
from .orphans import TxOrphanage
from .peers import KNOWN_LIMIT, MAX_GETDATA_ITEMS, MAX_SEND_BYTES, SEND_BUDGET, Peer
from .rejects import MAX_RECENT_REJECTS, MAX_REJECTED_TX_BYTES, RecentRejects
from .txrequest import MAX_REJECTED_TXIDS, RejectFilter, TxRequestTracker

log = logging.getLogger("toychain")

MAX_OUTBOUND = 8  # outbound peers of our own choosing (Core's 8 full-relay connections)
# Inbound connections at once. Each may hold a send budget (peers.py) of about
# 5 MB, so 64 bound what strangers can make us hold to about 320 MB; a devnet
# or a class has a handful of nodes. When full, new ones are refused (Core
# evicts an old one instead; we keep it simple, and our outbound peers, whom we
# chose, keep us connected to the honest network).
MAX_INBOUND = 64
# A connection must finish the version/verack handshake within this long: one
# round trip, milliseconds on the networks Toychain runs on (Core allows 60 s).
HANDSHAKE_SECONDS = 10.0
PING_SECONDS = 30.0  # a ping this often (Core: 2 minutes; our links are short)
PING_TIMEOUT = 60.0  # no pong this long after a ping: disconnected, not banned
TIMER_SECONDS = 1.0  # how often the shell calls Node.timer
# At most one batch of announcements per interval (each peer gets at most one
# inv per batch). A lone tx waits for none: only one that follows another
# within the interval does, for the rest of it. The interval starts at
# INV_INTERVAL; a batch of INV_BUSY_ITEMS txs or more doubles it, up to
# MAX_INV_INTERVAL, and a smaller one halves it, down to INV_INTERVAL: under a
# stream of txs each inv (and the getdata it brings back) carries several
# txids instead of one or two, and once the stream thins the interval is back
# to INV_INTERVAL within a few batches. An announcement waits at most
# MAX_INV_INTERVAL, far within the 100 ms per hop of PROTOCOL.md section 7.
INV_INTERVAL = 0.005
MAX_INV_INTERVAL = 0.02
INV_BUSY_ITEMS = 2
# Each accepted or refused tx is logged at debug level (an info line per tx
# cost a relaying node about a tenth of its CPU); at info, one line sums up
# the txs of the last SUMMARY_SECONDS, when there were any.
SUMMARY_SECONDS = 10.0
USER_AGENT = "/toychain:0.1.0/"


class Node:
    def __init__(self, chain: ChainState, mempool: Mempool, listen: str | None = None,
                 clock=_time.time, rng: random.Random | None = None,
                 max_outbound: int = MAX_OUTBOUND, handshake_seconds: float = HANDSHAKE_SECONDS):
        self.chain = chain
        self.net = chain.net
        self.mempool = mempool
        self.listen = listen
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self.max_outbound = max_outbound
        self.handshake_seconds = handshake_seconds
        self.nonce = self.rng.getrandbits(63)
        self.peers: dict[int, Peer] = {}
        self.banlist = BanList()
        self.claims = ListenClaims()
        self.addrs = AddrBook()
        # Request priorities: a fast generator seeded from the system's (one urandom call per
        # announcement cost a relaying node about 1% of its CPU); a caller's rng as it is.
        self.tx_requests = TxRequestTracker(rng or random.Random(self.rng.getrandbits(64)))
        self.blocks = BlockDownload(chain)
        self.orphans = TxOrphanage()
        self.recent_rejects = RecentRejects()  # with the refused txs' bytes, for explaintransaction
        self.rejected_txids = RejectFilter()  # not fetched again until the tip moves
        # set by the shell: called when the outbox stops being empty, except inside a call
        # that returns the actions itself (``frame``, ``sent``, ``flush``, ``timer``: most
        # calls; the shell takes them at once, so a reminder would only cost a callback)
        self.on_actions = None
        self._returning = False
        self.flush_at = None  # set by a shell that batches announcements: call flush() at clock() time t
        self._flush_due: float | None = None  # when the pending batch goes out (asked of the shell)
        self._flushed_at = float("-inf")  # when the last batch went out
        self.inv_interval = INV_INTERVAL  # the batches' spacing now (INV_INTERVAL..MAX_INV_INTERVAL)
        self._batch_items = 0  # txs and blocks announced since the last batch went out
        # set by a shell that keeps metrics: observe(kind, seconds, code) after each tx check
        # ("tx"; code None when accepted) and each block ("block"; code None)
        self.observe = None
        # set by a shell whose events may have no audience: watched() False drops them here
        self.watched = None
        self._outbox: list[Action] = []
        self._next_peer_id = 0
        self._tx_counts = Counter()  # "rpc", "peers", "rejected": txs since the last summary
        self._summary_at = clock()

    # -- the outbox -------------------------------------------------------------------------
    def _do(self, action: Action) -> None:
        if not self._outbox and self.on_actions is not None and not self._returning:
            self.on_actions()
        self._outbox.append(action)

    def _send(self, peer: Peer, message: dict) -> None:
        if peer.id not in self.peers:
            return
        text = wirejson.dumps(message).decode()
        peer.send_queued += len(text)
        self._do(Send(peer.id, text))

    def _publish(self, event: str, **fields) -> None:
        if self.watched is None or self.watched():
            self._do(Publish(event, fields))

    def _answer(self, handle, *args) -> list[Action]:
        """``handle(*args)`` and what was decided, which the caller takes at once:
        no ``on_actions`` reminder meanwhile."""
        self._returning = True
        try:
            handle(*args)
        except BaseException:
            if self._outbox and self.on_actions is not None:
                self.on_actions()  # what was decided before the error is not stranded
            raise
        finally:
            self._returning = False
        return self.take_actions()

    def take_actions(self) -> list[Action]:
        """Everything decided since the last call, in order; announcements too,
        unless the shell batches them (``flush_at``)."""
        if self.flush_at is None:
            self._flush_announcements()
        actions, self._outbox = self._outbox, []
        return actions

    def flush(self) -> list[Action]:
        """The announcements batched since the last flush, and what else is pending."""
        self._flush_due = None
        self._flushed_at = self.clock()
        if self._batch_items:  # a batch goes out: its size sets the spacing of the next
            if self._batch_items >= INV_BUSY_ITEMS:
                self.inv_interval = min(2 * self.inv_interval, MAX_INV_INTERVAL)
            else:
                self.inv_interval = max(self.inv_interval / 2, INV_INTERVAL)
            self._batch_items = 0
        return self._answer(self._flush_announcements)

    # -- what the shell reports -------------------------------------------------------------
    def inbound_opened(self, addr: str) -> tuple[int | None, list[Action]]:
        """An inbound connection from ``addr``: its peer id, or None to refuse it
        (MAX_INBOUND reached)."""
        if sum(1 for p in self.peers.values() if p.inbound) >= MAX_INBOUND:
            log.info("refusing inbound %s: %d inbound connections", addr, MAX_INBOUND)
            return None, self.take_actions()
        peer = self._new_peer(addr, inbound=True)
        return peer.id, self.take_actions()

    def outbound_opened(self, addr: str) -> tuple[int | None, list[Action]]:
        """We dialled ``addr`` and it answered: its peer id, or None when that was
        a probe (the shell then hangs up). We speak first."""
        if addr in self.claims.probing:
            self._probe_done(addr, answered=True)
            return None, self.take_actions()
        peer = self._new_peer(addr, inbound=False)
        peer.manual = self.addrs.dial_over(addr)
        self._send(peer, self._version_msg())
        return peer.id, self.take_actions()

    def outbound_failed(self, addr: str) -> list[Action]:
        """A dial to ``addr`` failed."""
        if addr in self.claims.probing:
            self._probe_done(addr, answered=False)
        elif self.addrs.dial_over(addr):
            self.addrs.manual_lost(addr, self.clock())
        return self.take_actions()

    def frame(self, peer_id: int, text: str) -> list[Action]:
        peer = self.peers.get(peer_id)
        if peer is None:
            return self.take_actions()
        return self._answer(self._on_frame, peer, text)

    def bad_frame(self, peer_id: int, reason: str) -> list[Action]:
        """A frame the shell could not hand over as text (binary, oversize, broken)."""
        peer = self.peers.get(peer_id)
        if peer is not None:
            self.punish(peer, reason)
        return self.take_actions()

    def sent(self, peer_id: int, nbytes: int) -> list[Action]:
        """The shell wrote ``nbytes`` bytes of frames to the peer (called after every
        burst of writes, so the common case returns at once)."""
        peer = self.peers.get(peer_id)
        if peer is None:
            return []
        peer.send_queued -= nbytes
        if not peer.getdata:
            return []
        return self._answer(self._serve_getdata, peer)

    def reading(self, peer_id: int) -> bool:
        """Should the shell read the next frame from this peer now? Not while
        its send budget is full or its last getdata is still being served."""
        peer = self.peers.get(peer_id)
        return peer is not None and not peer.getdata and peer.send_queued < SEND_BUDGET

    def closed(self, peer_id: int, reason: str) -> list[Action]:
        """The connection is gone (either side closed it)."""
        peer = self.peers.get(peer_id)
        if peer is not None:
            self._forget(peer, reason)
        return self.take_actions()

    def timer(self) -> list[Action]:
        """Housekeeping (the shell calls it every TIMER_SECONDS): pings, request
        timeouts, expired bans and mempool entries."""
        return self._answer(self._housekeeping)

    def _housekeeping(self) -> None:
        now = self.clock()
        for peer in list(self.peers.values()):
            if not peer.handshake_done:
                if now - peer.opened_at > self.handshake_seconds:
                    self._close(peer, "handshake timeout")
                continue
            if peer.ping_nonce is not None and now - peer.ping_sent > PING_TIMEOUT:
                self._close(peer, "ping timeout")
                continue
            if peer.ping_nonce is None and now - peer.ping_sent > PING_SECONDS:
                peer.ping_nonce = self.rng.getrandbits(63)
                peer.ping_sent = now
                self._send(peer, {"type": "ping", "nonce": peer.ping_nonce})
        self._dial_manual(now)
        self._dial_discovered(now)
        for peer_id in self.blocks.timed_out(now):
            self._close(self.peers[peer_id], "block download timeout")
        self.tx_requests.expire(now)
        self._request_txs()
        self.banlist.expire(now)
        self.orphans.expire(now)
        self._after_mempool_removal(self.mempool.expire(now))
        self._schedule_downloads()
        self._log_summary(now)

    def _log_summary(self, now: float) -> None:
        """The info line about txs, at most every SUMMARY_SECONDS and only after some."""
        if now - self._summary_at < SUMMARY_SECONDS:
            return
        counts, self._tx_counts = self._tx_counts, Counter()
        if counts:
            log.info("txs in the last %.0f s: %d accepted (%d from peers, %d by RPC), %d refused; "
                     "mempool %d txs, %d bytes", now - self._summary_at, counts["peers"] + counts["rpc"],
                     counts["peers"], counts["rpc"], counts["rejected"], len(self.mempool),
                     self.mempool.bytes)
        self._summary_at = now

    def limits(self) -> list[tuple[str, int, int]]:
        """Every container this node keeps, as (name, size now, its bound); for
        per-peer containers, the largest over all peers. The simulator checks
        them as it runs; the tests push each past its bound."""
        rows = [("recent rejects", len(self.recent_rejects), MAX_RECENT_REJECTS),
                ("recent rejects: tx bytes kept", self.recent_rejects.bytes, MAX_REJECTED_TX_BYTES),
                ("rejected txids", len(self.rejected_txids), MAX_REJECTED_TXIDS),
                ("bans", len(self.banlist.bans), MAX_BANS)]
        rows += self.blocks.limits() + self.tx_requests.limits() + self.orphans.limits()
        rows += self.addrs.limits(self.max_outbound, self._discovered_outbound())
        rows += self.claims.limits(MAX_INBOUND)
        peers = self.peers.values()
        rows += [("per peer: known inventory", max((len(p.known) for p in peers), default=0), KNOWN_LIMIT),
                 ("per peer: send queue (bytes)", max((p.send_queued for p in peers), default=0),
                  MAX_SEND_BYTES),
                 ("per peer: getdata to serve", max((len(p.getdata) for p in peers), default=0),
                  MAX_GETDATA_ITEMS),
                 ("inbound peers", sum(p.inbound for p in peers), MAX_INBOUND)]
        return rows

    # -- peers -----------------------------------------------------------------------------
    def _new_peer(self, addr: str, inbound: bool) -> Peer:
        self._next_peer_id += 1
        now = self.clock()
        peer = Peer(self._next_peer_id, addr, inbound, now)
        self.peers[peer.id] = peer
        self.blocks.add_peer(peer.id, preferred=not inbound)
        self.tx_requests.add_peer(peer.id)
        return peer

    def _version_msg(self) -> dict:
        tip = self.chain.tip
        return {"type": "version", "network": self.net.name,
                "genesis": self.net.genesis.hash.hex(), "protocol": m.PROTOCOL_VERSION,
                "nonce": self.nonce, "height": tip.height, "best": tip.hash.hex(),
                "user_agent": USER_AGENT, "listen": self.listen}

    def is_banned(self, key: str) -> bool:
        """Is ``key`` refused? Never for a peer the operator named."""
        return key not in self.addrs.manual and self.banlist.is_banned(key, self.clock())

    def _close(self, peer: Peer, reason: str) -> None:
        self._do(Close(peer.id, reason))
        self._forget(peer, reason)

    def _forget(self, peer: Peer, reason: str) -> None:
        if self.peers.pop(peer.id, None) is None:
            return
        self.blocks.remove_peer(peer.id)
        self.tx_requests.remove_peer(peer.id)
        self.orphans.remove_peer(peer.id)
        self._request_txs()
        if peer.manual:
            self.addrs.manual_lost(peer.addr, self.clock())
        if peer.handshake_done:
            log.info("peer %s disconnected: %s", peer.ban_key, reason)
            self._publish("peer_disconnected", id=peer.id, addr=peer.ban_key, reason=reason)
        self._schedule_downloads()

    def punish(self, peer: Peer, reason: str) -> None:
        """Disconnect a peer that broke the protocol and ban it (banlist.py says
        on which key); a peer the operator named is only disconnected."""
        if peer.manual:
            log.warning("disconnecting peer %s (named by the operator, not banned): %s",
                        peer.ban_key, reason)
            self._close(peer, f"misbehaved: {reason}")
            return
        key = self._ban_target(peer)
        if key is None:  # its claim is being probed: the ban waits for the answer
            self.claims.probing[peer.ban_key].append((peer.addr, reason))
        else:
            self._ban(key, reason)
        self._close(peer, f"banned: {reason}")

    def _ban(self, key: str, reason: str) -> None:
        if key not in self.addrs.manual:
            log.warning("banning %s: %s", key, reason)
            self.banlist.ban(key, reason, self.clock())

    def _ban_target(self, peer: Peer) -> str | None:
        """The key a ban of ``peer`` falls on; None while its claim's probe runs."""
        if not peer.inbound or not peer.listen:
            return peer.ban_key
        answered = self.claims.answered(peer.ban_key, self.clock())
        if answered is False:
            return peer.ban_key  # nothing else listens there: the claim harms nobody
        if answered is None and peer.ban_key in self.claims.probing:
            return None
        return peer.addr

    def _probe(self, peer: Peer) -> None:
        """An inbound peer claims an address: is something else listening there?"""
        key = peer.ban_key
        if (self.claims.answered(key, self.clock()) is not None
                or key in self.addrs.dialling or key == self.listen):
            return
        if any(p.addr == key for p in self.peers.values() if not p.inbound):
            self.claims.probe_done(key, answered=True, now=self.clock())  # we are connected to it
        elif self.claims.start_probe(key):
            self._do(Dial(key))

    def _probe_done(self, addr: str, answered: bool) -> None:
        for source, reason in self.claims.probe_done(addr, answered, self.clock()):
            self._ban(source if answered else addr, reason)

    def disconnect(self, key: str) -> bool:
        """The ``disconnectnode`` RPC: close every connection to ``key``, and dial
        it no more from the address book. False if none was open."""
        self.addrs.hold(key)
        found = False
        for peer in list(self.peers.values()):
            if key in (peer.ban_key, peer.addr):
                self._close(peer, "disconnectnode")
                self.addrs.hold(peer.ban_key)
                found = True
        return found

    def connected_keys(self) -> set[str]:
        return {p.ban_key for p in self.peers.values()} | {p.addr for p in self.peers.values()}

    def add_peer(self, addr: str, persistent: bool = True) -> bool:
        """The ``addnode`` RPC and ``--peer``: dial ``addr`` now and, if
        ``persistent``, again whenever the connection is lost. False if the
        list of manual peers is full."""
        if not self.addrs.add_manual(addr, persistent):
            return False
        self._dial_manual(self.clock())
        return True

    def _dial_manual(self, now: float) -> None:
        for addr in self.addrs.due(now):
            if addr in self.connected_keys() or addr in self.claims.probing:
                self.addrs.dial_over(addr)
                self.addrs.manual_lost(addr, now)
            else:
                self._do(Dial(addr))

    def _discovered_outbound(self) -> int:
        """Outbound peers found through addresses, dials in progress included."""
        connected = sum(1 for p in self.peers.values() if not p.inbound and not p.manual)
        return connected + self.addrs.discovered_dials()

    def _dial_discovered(self, now: float) -> None:
        """One dial per tick to an address from the book, while slots are free."""
        if self._discovered_outbound() >= self.max_outbound:
            return
        busy = self.connected_keys() | set(self.addrs.manual) | set(self.claims.probing) | {self.listen}
        addr = self.addrs.pick(now, lambda a: a in busy or self.is_banned(a))
        if addr is not None:
            self._do(Dial(addr))

    def request_stop(self) -> None:
        self._do(Stop())

    # -- frames ------------------------------------------------------------------------------
    def _on_frame(self, peer: Peer, text: str) -> None:
        try:
            msg = m.parse(text)
        except Misbehaviour as error:
            self.punish(peer, str(error))
            return
        if msg is None:
            return  # an unknown type: ignored (forward compatibility)
        handler, before_handshake = HANDLERS[msg["type"]]
        if before_handshake or peer.handshake_done:
            handler(self, peer, msg)

    def _on_version(self, peer: Peer, msg: dict) -> None:
        if peer.version is not None:
            return
        if msg["network"] != self.net.name or msg["genesis"] != self.net.genesis.hash:
            log.info("peer %s is on another network (%s): closing", peer.addr, msg["network"])
            self._close(peer, "other network")
            return
        if msg["nonce"] == self.nonce:
            self._close(peer, "connected to self")
            return
        peer.version = msg
        peer.listen = msg["listen"]
        peer.height = msg["height"]
        peer.user_agent = msg["user_agent"]
        if self.is_banned(peer.ban_key) or self.is_banned(peer.addr):
            self._close(peer, "banned")
            return
        if peer.inbound:
            if peer.listen:
                self._probe(peer)
            self._send(peer, self._version_msg())
            self._send(peer, {"type": "verack"})
        elif peer.verack_received:
            self._handshake_done(peer)

    def _on_verack(self, peer: Peer, msg: dict) -> None:
        if peer.version is None or peer.handshake_done:
            return
        peer.verack_received = True
        if not peer.inbound:
            self._send(peer, {"type": "verack"})
        self._handshake_done(peer)

    def _handshake_done(self, peer: Peer) -> None:
        peer.handshake_done = True
        if not peer.inbound:
            self.addrs.manual_connected(peer.addr)
        if peer.listen:
            self._learn_addr(peer.ban_key)
        log.info("peer %s connected (%s, height %d, %s)", peer.ban_key,
                 "inbound" if peer.inbound else "outbound", peer.height, peer.user_agent)
        self._publish("peer_connected", id=peer.id, addr=peer.ban_key, inbound=peer.inbound,
                      height=peer.height)
        self._send(peer, m.getheaders_msg(self.chain.locator()))
        if not peer.inbound:
            self._send(peer, {"type": "getaddr"})
            peer.addr_tokens.grant(m.MAX_ADDRS)  # room for its whole answer

    # -- liveness and addresses ----------------------------------------------------------------
    def _on_ping(self, peer: Peer, msg: dict) -> None:
        self._send(peer, {"type": "pong", "nonce": msg["nonce"]})

    def _on_pong(self, peer: Peer, msg: dict) -> None:
        if msg["nonce"] == peer.ping_nonce:
            peer.ping_nonce = None

    def _on_getaddr(self, peer: Peer, msg: dict) -> None:
        if peer.getaddr_answered:
            return  # once per connection (Core): a cheap message, a big answer
        peer.getaddr_answered = True
        addrs = [a for a in self.addrs if a != peer.ban_key]
        if self.listen:
            addrs.append(self.listen)
        self._send(peer, {"type": "addr", "addrs": addrs[-m.MAX_ADDRS:]})

    def _on_addr(self, peer: Peer, msg: dict) -> None:
        now = self.clock()
        for addr in msg["addrs"]:
            if not peer.addr_tokens.take(now):
                break  # over its rate: the rest is ignored, not punished
            self._learn_addr(addr)

    def _learn_addr(self, addr: str) -> None:
        if addr != self.listen:
            self.addrs.learn(addr)

    # -- announcements --------------------------------------------------------------------------
    def announce(self, kind: str, hash_: bytes, skip: Peer | None = None) -> None:
        queued = False
        for peer in self.peers.values():
            if peer is skip or not peer.handshake_done or peer.knows(kind, hash_):
                continue
            peer.mark_known(kind, hash_)
            peer.pending_inv.append((kind, hash_))
            queued = True
        if queued and self.flush_at is not None:
            self._batch_items += 1
            if self._flush_due is None:
                self._flush_due = max(self.clock(), self._flushed_at + self.inv_interval)
                self.flush_at(self._flush_due)

    def _flush_announcements(self) -> None:
        for peer in self.peers.values():
            if peer.pending_inv:
                items, peer.pending_inv = peer.pending_inv, []
                if peer.send_queued >= SEND_BUDGET:
                    continue  # it is not reading: dropped, not queued (peers.py)
                for start in range(0, len(items), m.MAX_INV):
                    self._send(peer, m.inv(items[start:start + m.MAX_INV]))

    # -- inventory ------------------------------------------------------------------------------
    def _on_inv(self, peer: Peer, msg: dict) -> None:
        want, ask_headers, txs, blocks = [], False, False, False
        now = self.clock()
        for kind, hash_ in msg["items"]:
            peer.mark_known(kind, hash_)
            if kind == "tx":
                txs = True
                if not self._have_tx(hash_):
                    self.tx_requests.announced(peer.id, hash_, preferred=not peer.inbound)
            else:
                blocks = True
                entry = self.chain.index.get(hash_)
                if entry is not None:
                    peer.height = max(peer.height, entry.height)
                    self.blocks.peer_has(peer.id, entry)
                if self.blocks.announced(peer.id, hash_, now):
                    want.append((kind, hash_))
                elif entry is None and not self.chain.invalid_reason(hash_):
                    ask_headers = True
        if want:
            self._send(peer, m.inv(want, "getdata"))
        if ask_headers:  # someone else is fetching it: learn that this peer has it too
            self._send(peer, m.getheaders_msg(self.chain.locator()))
        if txs:
            self._request_txs()
        if blocks:
            self._schedule_downloads()

    def _have_tx(self, txid: bytes) -> bool:
        return txid in self.mempool or txid in self.orphans or txid in self.rejected_txids

    def _request_txs(self) -> None:
        for peer_id, txids in self.tx_requests.requests(self.clock()).items():
            if peer_id in self.peers:
                self._send(self.peers[peer_id], m.inv([("tx", t) for t in txids], "getdata"))

    def _on_getdata(self, peer: Peer, msg: dict) -> None:
        for item in msg["items"]:
            if len(peer.getdata) >= MAX_GETDATA_ITEMS:
                break
            peer.getdata[item] = None  # each item once, however often it is asked
        self._serve_getdata(peer)

    def _serve_getdata(self, peer: Peer) -> None:
        """Answer queued getdata items while the peer's send budget has room;
        the rest waits until the peer reads (``sent``)."""
        missing = []
        while peer.getdata and peer.send_queued < SEND_BUDGET:
            (kind, hash_), _ = peer.getdata.popitem(last=False)
            item = self.mempool.get(hash_) if kind == "tx" else self.chain.get_block(hash_)
            if item is None:
                missing.append((kind, hash_))
                continue
            peer.mark_known(kind, hash_)
            self._send(peer, m.tx_msg(item) if kind == "tx" else m.block_msg(item))
        if missing:
            self._send(peer, m.inv(missing, "notfound"))

    def _on_notfound(self, peer: Peer, msg: dict) -> None:
        for kind, hash_ in msg["items"]:
            if kind == "block":
                self.blocks.not_found(peer.id, hash_)
            else:
                self.tx_requests.received(peer.id, hash_)
        self._request_txs()
        self._schedule_downloads()

    # -- transactions ---------------------------------------------------------------------------
    def _on_tx(self, peer: Peer, msg: dict) -> None:
        tx = msg["tx"]
        peer.mark_known("tx", tx.txid)
        self.tx_requests.received(peer.id, tx.txid)
        try:
            self.accept_tx(tx, peer.ban_key, relay_skip=peer)
        except RuleError as error:
            self._refused_from_peer(tx, error)
            if error.fault.tx & ORPHAN:
                self._keep_orphan(peer, tx)
            # No decodable loose tx is punished (the fault table): the peer may
            # simply have seen a different block or mempool than we have.
        self.tx_requests.forget(tx.txid)  # in hand, whatever became of it
        self._request_txs()

    def _refused_from_peer(self, tx: Tx, error: RuleError) -> None:
        if error.fault.tx & REMEMBER:
            self.rejected_txids.add(tx.txid)

    def _keep_orphan(self, peer: Peer, tx: Tx) -> None:
        if not self.orphans.add(tx, peer.id, peer.ban_key, self.clock()):
            return
        for txin in tx.inputs:  # the sender must have the parents: as if it announced them
            if not self._have_tx(txin.prev_txid) and self.chain.store.tx_location(txin.prev_txid) is None:
                self.tx_requests.announced(peer.id, txin.prev_txid, preferred=not peer.inbound)

    def _retry_orphans(self, parent: bytes) -> None:
        """``parent`` is in: try its orphans again; one still missing a parent stays."""
        for orphan in self.orphans.children_of(parent):
            if orphan.tx.txid not in self.orphans:
                continue  # gone meanwhile (accepted through another parent)
            try:
                self.accept_tx(orphan.tx, orphan.source, relay_skip=self.peers.get(orphan.peer))
            except RuleError as error:
                if not error.fault.tx & ORPHAN:
                    self.orphans.remove(orphan.tx.txid)
                    self._refused_from_peer(orphan.tx, error)

    def accept_tx(self, tx: Tx, source: str = "rpc", relay_skip: Peer | None = None) -> int:
        """Mempool acceptance, relay, events; raises RuleError (recorded) on refusal."""
        try:
            fee, evicted = self._measured("tx", self.mempool.accept, tx)
        except RuleError as error:
            if not (relay_skip is not None and error.fault.tx & ORPHAN):
                self._record_reject("tx", tx.txid, error, source, tx.raw)  # a peer's orphan is kept, not refused
            raise
        self.tx_requests.forget(tx.txid)
        self._tx_counts["rpc" if source == "rpc" else "peers"] += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("accepted tx %s from %s (fee %d units, %d bytes)", tx.txid.hex(), source, fee, tx.size)
        self._publish("tx_accepted", txid=tx.txid.hex(), fee=fee, size=tx.size, source=source)
        self._after_mempool_removal([(t, "size") for t in evicted])
        self.announce("tx", tx.txid, skip=relay_skip)
        self.orphans.remove(tx.txid)
        self._retry_orphans(tx.txid)
        return fee

    def _measured(self, kind: str, validate, *args):
        """``validate(*args)``, timed for ``observe`` when the shell set it."""
        if self.observe is None:
            return validate(*args)
        started, code = _time.perf_counter(), None
        try:
            return validate(*args)
        except RuleError as error:
            code = error.code
            raise
        finally:
            self.observe(kind, _time.perf_counter() - started, code)

    def _record_reject(self, kind: str, hash_: bytes, error: RuleError, source: str,
                       raw: bytes | None = None) -> None:
        if kind == "tx":
            self._tx_counts["rejected"] += 1
        log.log(logging.DEBUG if kind == "tx" else logging.INFO, "rejected %s %s from %s: %s",
                kind, hash_.hex(), source, error)
        self.recent_rejects.add({
            "time": int(self.clock()), "kind": kind, "id": hash_.hex(),
            "reject_reason": error.code, "message": error.message, "source": source}, raw)
        self._publish(f"{kind}_rejected", id=hash_.hex(), reject_reason=error.code,
                      message=error.message, source=source)

    def _publish_reorg(self, before) -> None:
        """One ``reorg`` event for a tip that left its branch (an extension:
        docs/protocol-notes.md): the blocks left, old tip first, and the
        blocks joined, fork first, between the tip ``before`` and the tip now.
        A reorg that failed back onto the branch it left moved no tip: none."""
        left, joined, after = [], [], self.chain.tip
        while before is not after:
            if before.height >= after.height:
                left.append(before.hash.hex())
                before = before.parent
            else:
                joined.append(after.hash.hex())
                after = after.parent
        if left:
            tip = self.chain.tip
            self._publish("reorg", fork=after.hash.hex(), fork_height=after.height, disconnected=left,
                          connected=joined[::-1], tip=tip.hash.hex(), height=tip.height,
                          chainwork=f"{tip.chainwork:064x}")

    def _after_mempool_removal(self, removed: list[tuple[Tx, str]]) -> None:
        for tx, reason in removed:
            self._publish("tx_removed", txid=tx.txid.hex(), reason=reason)

    # -- headers and blocks ----------------------------------------------------------------------
    def _on_getheaders(self, peer: Peer, msg: dict) -> None:
        headers = self.chain.headers_after(msg["locator"], msg["stop"], m.MAX_HEADERS)
        self._send(peer, m.headers_msg(headers))

    def _on_headers(self, peer: Peer, msg: dict) -> None:
        headers = msg["headers"]  # linked to each other: messages.parse checked
        last = None
        for header in headers:
            try:
                last = self.chain.accept_header(header)
            except RuleError as error:
                if error.fault.block & ORPHAN:
                    self._send(peer, m.getheaders_msg(self.chain.locator()))
                elif error.fault.block & PUNISH:
                    self.punish(peer, f"invalid header {header.hash.hex()}: {error}")
                    return
                break
            peer.mark_known("block", header.hash)
            if last.hash not in self.chain.index:
                break  # not kept: the chain state's side entries are full (chain/chainstate.py)
        if last is not None and last.hash in self.chain.index:
            self.blocks.peer_has(peer.id, last)
            peer.height = max(peer.height, last.height)
            if len(headers) == m.MAX_HEADERS:
                self._send(peer, m.getheaders_msg([last.hash] + self.chain.locator()))
        self._schedule_downloads()

    def _schedule_downloads(self) -> None:
        now = self.clock()
        for peer_id in self.blocks.order():
            peer = self.peers.get(peer_id)
            if peer is not None and peer.handshake_done:
                hashes = self.blocks.next_requests(peer_id, now)
                if hashes:
                    self._send(peer, m.inv([("block", h) for h in hashes], "getdata"))

    def _on_block(self, peer: Peer, msg: dict) -> None:
        block = msg["block"]
        peer.mark_known("block", block.hash)
        outcome = self.accept_block(block, peer.ban_key, requested=self.blocks.asked(peer.id, block.hash))
        if outcome.status == "orphan":
            self._send(peer, m.getheaders_msg(self.chain.locator()))
        elif outcome.error is not None and outcome.error.fault.block & PUNISH:
            self.punish(peer, f"invalid block {block.hash.hex()}: {outcome.error}")
            return
        entry = self.chain.index.get(block.hash)
        if entry is not None and not entry.failed:
            peer.height = max(peer.height, entry.height)
            self.blocks.peer_has(peer.id, entry)
        self._schedule_downloads()

    def accept_block(self, block: Block, source: str = "rpc", requested: bool = True):
        """Process a block from anywhere; update the mempool, relay, publish events.
        ``requested``: False for a block a peer sent without being asked (an
        unrequested block on a branch with less work is not stored)."""
        self.blocks.received(block.hash)
        before = self.chain.tip
        outcome = self._measured("block", self.chain.process_block, block, requested, source)
        for new in outcome.connected:  # relay first: the next hop should not wait for our bookkeeping
            self.announce("block", new.hash)
        if outcome.error is not None and outcome.status != "orphan":
            self._record_reject("block", block.hash, outcome.error, source)
        for gone in outcome.disconnected:
            log.info("disconnected block %s", gone.hash.hex())
            self._publish("block_disconnected", hash=gone.hash.hex(),
                          txids=[tx.txid.hex() for tx in gone.txs])
        for new in outcome.connected:
            entry = self.chain.index[new.hash]
            log.info("connected block %s at height %d (%d txs) from %s", new.hash.hex(),
                     entry.height, len(new.txs), source)
            self._publish("block_connected", hash=new.hash.hex(), height=entry.height,
                          prev_hash=new.header.prev_hash.hex(), time=new.header.time,
                          miner=_miner_address(new), txids=[tx.txid.hex() for tx in new.txs],
                          source=source, chainwork=f"{entry.chainwork:064x}")
        if outcome.disconnected:
            self._publish_reorg(before)
        if outcome.connected or outcome.disconnected:
            self.rejected_txids.clear()  # what was invalid may be valid on the new tip
            pooled = set(self.mempool.entries)
            removed = self.mempool.update_for_chain(outcome.connected, outcome.disconnected)
            self._after_mempool_removal(removed)
            for gone in outcome.disconnected:  # txs a reorg put back: accepted like any other
                for tx in gone.txs[1:]:
                    entry = self.mempool.entries.get(tx.txid)
                    if entry is not None and tx.txid not in pooled:
                        pooled.add(tx.txid)
                        self._publish("tx_accepted", txid=tx.txid.hex(), fee=entry.fee, size=tx.size,
                                      source="reorg")
                        self.announce("tx", tx.txid)
        for new in outcome.connected:
            self.orphans.remove_for_block(new.txs)
            for tx in new.txs:
                self._retry_orphans(tx.txid)
        return outcome


# message type -> (handler, acted on before the handshake is done)
HANDLERS = {
    "version": (Node._on_version, True),
    "verack": (Node._on_verack, True),
    "ping": (Node._on_ping, False),
    "pong": (Node._on_pong, False),
    "getaddr": (Node._on_getaddr, False),
    "addr": (Node._on_addr, False),
    "inv": (Node._on_inv, False),
    "getdata": (Node._on_getdata, False),
    "notfound": (Node._on_notfound, False),
    "tx": (Node._on_tx, False),
    "getheaders": (Node._on_getheaders, False),
    "headers": (Node._on_headers, False),
    "block": (Node._on_block, False),
}


def _miner_address(block: Block) -> str | None:
    outputs = block.txs[0].outputs
    return encode_address(outputs[0].owner) if outputs else None
