"""The aiohttp shell: one server per node with ``/p2p``, ``/rpc`` and ``/events``.

This module only moves frames and carries out what the node decides. Each
peer connection gets a ``PeerLink``: a reader that hands every text frame to
``Node.frame`` and a writer that drains the link's outbox to the socket. The
node answers with actions (``actions.py``): ``Send`` goes to a link's
outbox, ``Close`` ends a link, ``Dial`` opens an outbound connection,
``Publish`` goes to the event bus, ``Stop`` ends the server. A timer calls
``Node.timer`` every ``TIMER_SECONDS``. ``/`` serves the live dashboard page
for this node (``page.py``).

Security defaults: bind 127.0.0.1; admin RPC methods need
``Authorization: Bearer <cookie>`` where the cookie is 64 random hex digits
written to ``DATADIR/.cookie`` with mode 0600 at every start; every frame and
request body is size-limited. Every HTTP request passes two middlewares
first: ``http_limits`` (connection count and idle timeouts) and
``http_guard`` (Host, Origin and the JSON content type: what a web page in
the user's browser may do). A request body must arrive within
``BODY_SECONDS``; ``jsonrpc`` turns any body into an answer, one request at
a time; at most ``MAX_EVENT_SUBSCRIBERS`` clients watch ``/events``, and no
event is even built while none does (``Node.watched``).

The event loop never runs a long validation (``gate.py``): a frame of
``OFFLOAD_CHARS`` or more, or any frame about blocks, is handed to the node
on the validation thread, and so are big RPC validations (``rpc.run``) and
the miners' blocks; every other call into the node waits until it is done
(``NodeGate.held``). A ``LoopLagMonitor`` measures how late the loop wakes
up, and ``/metrics`` serves it with the node's other figures (``metrics.py``;
no cookie, like Core's node exporters: read-only and holding no secret).
"""

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import socket
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import aiohttp
from aiohttp import web

from chain.sigcheck import ParallelVerifier
from chain.chainstate import ChainState
from chain.params import Network
from chain.sigcache import SignatureCache
from chain.storage import Store

from . import jsonrpc, rpc
from .actions import Close, Dial, Publish, Send, Stop
from .events import EventBus
from .gate import OFFLOAD_CHARS, NodeGate
from .http_guard import BrowserPolicy, add_cors, guard
from .http_limits import IDLE_SECONDS, Listener, connection_limit
from .looplag import LoopLagMonitor
from .mempool import Mempool
from .messages import MAX_FRAME_BYTES
from .metrics import CONTENT_TYPE, NodeMetrics
from .miner import Miner
from .node import HANDSHAKE_SECONDS, TIMER_SECONDS, Node
from .page import add_page_routes, single_node_config

log = logging.getLogger("toychain")

# aiohttp refuses frames of *at least* max_msg_size bytes; the protocol closes
# only frames *over* 4 MiB, so a frame of exactly 4 MiB must get through.
WS_MAX_MSG_SIZE = MAX_FRAME_BYTES + 1
MAX_RPC_BODY = 8 * 1024 * 1024
DIAL_TIMEOUT = 10.0          # a dial to a peer that does not answer gives up after this long
BODY_SECONDS = 10.0          # 8 MiB in 10 s is 0.8 MB/s; a local client sends it in milliseconds
MAX_EVENT_SUBSCRIBERS = 64   # /events clients: a dashboard tab holds one per node it watches
MAX_CONCURRENT_BATCHES = 4   # batches run at once (each up to 16 MiB of replies); single calls never wait
SHUTDOWN_SECONDS = 5.0       # how long stop() lets requests in progress finish
SWITCH_SECONDS = 0.001      # GIL switch interval (Python: 5 ms): the most the loop waits for it (gate.py)
BURST_BYTES = 256 * 1024     # frames a peer link writes under one TCP_CORK (PeerLink)
TCP_CORK = getattr(socket, "TCP_CORK", None)  # Linux only
REPLY_CHUNK = 64 * 1024      # bytes of a batch's replies joined into one write (a join this size takes microseconds)


def write_cookie(datadir: Path) -> str:
    token = secrets.token_hex(32)
    path = datadir / ".cookie"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    return token


class NodeServer:
    """A running node: chain, mempool, peers, and its HTTP/WebSocket server."""

    def __init__(self, net: Network, datadir: str | Path, host: str = "127.0.0.1",
                 port: int | None = None, peers: list[str] = (), mine: bool = False,
                 automine: float | None = None, miner_owner: bytes | None = None,
                 min_fee_rate: int = 1, max_mempool_bytes: int = 32_000_000,
                 allowed_origins: list[str] = (), handshake_seconds: float = HANDSHAKE_SECONDS):
        self.net = net
        self.datadir = Path(datadir)
        self.host = host
        self.port = net.default_port if port is None else port
        self.initial_peers = list(peers)
        self.mine = mine
        self.automine = automine
        self.miner_owner = miner_owner
        self.min_fee_rate = min_fee_rate
        self.max_mempool_bytes = max_mempool_bytes
        self.allowed_origins = list(allowed_origins)
        self.handshake_seconds = handshake_seconds
        self.stopped = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._sockets: set[web.WebSocketResponse | aiohttp.ClientWebSocketResponse] = set()
        self._stopping = False
        self._drain_scheduled = False
        self.node: Node | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        sigcache = SignatureCache()  # shared: a block's txs were mostly checked in the mempool
        self.verifier = ParallelVerifier(cache=sigcache)
        chain = ChainState(self.net, Store(self.datadir / "chain.sqlite"), verifier=self.verifier)
        gc.freeze()  # the block index just loaded lives forever: keep the collector off it
        sys.setswitchinterval(SWITCH_SECONDS)  # while the validation thread runs Python
        mempool = Mempool(chain, self.min_fee_rate, self.max_mempool_bytes, sigcache=sigcache)
        self.events = EventBus()
        self.node = Node(chain, mempool, handshake_seconds=self.handshake_seconds)
        self.gate = NodeGate(after=self._carry_out_all)
        self.node.on_actions = self._actions_pending
        self.node.watched = lambda: self.events.subscribers > 0  # no /events client: no event is built
        self.node.flush_at = self._flush_at
        self.lag = LoopLagMonitor()
        self.metrics = NodeMetrics(self.node, self.gate, self.lag)
        self.lag.observe = self.metrics.loop_lag.observe
        self.node.observe = self.metrics.validated
        self._links: dict[int, PeerLink] = {}
        self.session = aiohttp.ClientSession(  # for dialling peers: a dial must not hang
            timeout=aiohttp.ClientTimeout(total=None, connect=DIAL_TIMEOUT, sock_connect=DIAL_TIMEOUT))
        # generatetoaddress's proof of work, and decoding on a thread; started on first use
        self.workers = rpc.Workers(ProcessPoolExecutor(1), ThreadPoolExecutor(1, thread_name_prefix="rpc"),
                                   rpc.Turns(self.gate), self.gate)
        self._batches = asyncio.Semaphore(MAX_CONCURRENT_BATCHES)
        self.listener = Listener(connection_limit())
        self.policy = BrowserPolicy(self.host, self.port, self.allowed_origins)
        app = web.Application(client_max_size=MAX_RPC_BODY,
                              middlewares=[self.listener.track, guard(self.policy)])
        app.router.add_get("/p2p", self._p2p_inbound)
        app.router.add_post("/rpc", self._rpc)
        app.router.add_get("/events", self._events)
        app.router.add_get("/metrics", self._metrics)
        # The live dashboard: this node's own view at /, and CORS so allowed pages can call /rpc.
        add_page_routes(app, lambda request: single_node_config(self.node.listen, request))
        add_cors(app, self.policy, "/rpc")
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                    keepalive_timeout=IDLE_SECONDS, shutdown_timeout=SHUTDOWN_SECONDS)
        await self.runner.setup()
        # Port 0 is the OS's choice: the policy learns it before anything is served.
        self.port = self.policy.port = await self.listener.bind(self.runner, self.host, self.port)
        await self.listener.start()
        self.node.listen = f"{self.host}:{self.port}"
        self.token = write_cookie(self.datadir)
        log.info("%s node listening on %s (height %d, datadir %s)", self.net.name,
                 self.node.listen, chain.height, self.datadir)
        self._spawn(self._ticker())
        self._spawn(self.lag.run())
        for addr in self.initial_peers:
            self.node.add_peer(addr)
        self._drain()
        if self.miner_owner is not None and (self.mine or self.automine):
            miner = Miner(self.node, self.miner_owner, self.gate)
            self._spawn(miner.run_pow() if self.mine else miner.run_automine(self.automine))

    async def stop(self) -> None:
        self._stopping = True  # no new dials
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        for ws in list(self._sockets):
            await ws.close()
        await self.listener.close()
        await self.runner.cleanup()
        self.workers.miner.shutdown(wait=False, cancel_futures=True)
        self.workers.pure.shutdown(wait=False, cancel_futures=True)
        await self.session.close()
        self.gate.close()  # waits for a validation under way
        self.metrics.close()
        self.verifier.close()
        self.node.chain.close()
        log.info("node stopped cleanly at height %d", self.node.chain.height)

    async def run_until_stopped(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.stopped.set)
        await self.stopped.wait()
        await self.stop()

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TIMER_SECONDS)
            await self._call(self.node.timer)

    async def _call(self, method, *args) -> None:
        """``method(*args)`` of the node, on the loop once no validation runs; its
        actions carried out."""
        async with self.gate.held():
            self._carry_out(method(*args))

    # -- carrying out the node's decisions -------------------------------------------------------
    def _actions_pending(self) -> None:
        """The node's outbox stopped being empty: empty it soon, whoever called the node
        (on the validation thread: the gate's ``after`` empties it)."""
        if not self._drain_scheduled and not self.gate.busy:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        """Carry out actions left by calls that do not return them (RPC, miner)."""
        self._drain_scheduled = False
        if not self.gate.busy:  # else the validation thread has the node: ``after`` drains
            self._carry_out(self.node.take_actions())

    def _flush_at(self, when: float) -> None:
        """The node batched an announcement: send the batch at ``when`` (its clock).
        On the validation thread nothing is scheduled: the gate's ``after`` sends it."""
        if not self.gate.busy:
            asyncio.get_running_loop().call_later(max(0.0, when - self.node.clock()), self._flush)

    def _flush(self) -> None:
        if not self.gate.busy:
            self._carry_out(self.node.flush())

    def _carry_out_all(self) -> None:
        """After a validation, on the loop: what the node decided meanwhile."""
        self._carry_out(self.node.flush())

    def _carry_out(self, actions) -> None:
        for action in actions:
            kind = type(action)  # a dispatch on the type: a ``match`` on class patterns costs more per frame
            if kind is Send:
                link = self._links.get(action.peer)
                if link is not None:
                    link.push(action.text)
            elif kind is Publish:
                self.events.publish(action.event, **action.fields)
            elif kind is Close:
                link = self._links.get(action.peer)
                if link is not None:
                    link.close(action.reason)
            elif kind is Dial:
                self._spawn(self._dial(action.addr))
            elif kind is Stop:
                asyncio.get_running_loop().call_soon(self.stopped.set)

    # -- peers ------------------------------------------------------------------------------------
    async def _dial(self, addr: str) -> None:
        if self._stopping:
            return
        try:
            ws = await self.session.ws_connect(
                f"http://{addr}/p2p", max_msg_size=WS_MAX_MSG_SIZE,
                timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
            log.debug("dial %s failed: %s", addr, error)
            await self._call(self.node.outbound_failed, addr)
            return
        async with self.gate.held():
            peer_id, actions = self.node.outbound_opened(addr)
        if peer_id is None:  # a probe: the node only wanted to know that something answers
            self._carry_out(actions)
            await ws.close()
            return
        await self._serve_peer(ws, peer_id, actions)

    async def _p2p_inbound(self, request: web.Request) -> web.StreamResponse:
        host, port = request.transport.get_extra_info("peername")[:2]
        async with self.gate.held():
            peer_id, actions = self.node.inbound_opened(f"{host}:{port}")
        if peer_id is None:
            self._carry_out(actions)
            return web.Response(status=503, text="too many connections\n")
        ws = web.WebSocketResponse(max_msg_size=WS_MAX_MSG_SIZE)
        try:
            await ws.prepare(request)
        except BaseException:
            await self._call(self.node.closed, peer_id, "upgrade failed")
            raise
        await self._serve_peer(ws, peer_id, actions)
        return ws

    async def _serve_peer(self, ws, peer_id: int, actions) -> None:
        async with self.gate.held():
            dropped = peer_id not in self.node.peers  # while the upgrade was under way
        if dropped:
            self._carry_out(actions)
            await ws.close()
            return
        link = PeerLink(self.node, ws, peer_id, self._carry_out, self.gate)
        self._links[peer_id] = link
        self._sockets.add(ws)
        self._carry_out(actions)
        try:
            await link.run()
        finally:
            self._links.pop(peer_id, None)
            self._sockets.discard(ws)

    # -- RPC and events -------------------------------------------------------------------------
    async def _rpc(self, request: web.Request) -> web.Response:
        try:
            if request.content.is_eof():  # all here (a small body comes with its headers): no wait
                raw = await request.read()
            else:
                async with asyncio.timeout(BODY_SECONDS):
                    raw = await request.read()
            body = jsonrpc.parse(raw)
        except TimeoutError:
            return web.Response(status=408, text=f"the request body did not arrive within {BODY_SECONDS:g} s\n")
        except web.HTTPRequestEntityTooLarge:
            return self._reply(jsonrpc.error_reply(None, jsonrpc.INVALID_REQUEST, (
                f"invalid request: the body is over {MAX_RPC_BODY:,} bytes")))
        except jsonrpc.EnvelopeError as error:
            return self._reply(error.reply)
        if any(m in rpc.ADMIN for m in jsonrpc.methods(body)) and not self._authorized(request):
            request_id = body.get("id") if isinstance(body, dict) and jsonrpc.invalid(body) is None else None
            return self._reply(jsonrpc.error_reply(request_id, jsonrpc.INVALID_REQUEST,
                                                   "admin method: Authorization: Bearer <cookie> required"),
                               status=401)
        if isinstance(body, list) and len(body) > 1:
            async with self._batches:
                return self._reply(await jsonrpc.answer(body, self._run))
        return self._reply(await jsonrpc.answer(body, self._run))

    @staticmethod
    def _reply(reply: dict | list[bytes], status: int = 200) -> web.Response:
        """One error object, or the pieces of an answer, sent in chunks of about
        REPLY_CHUNK bytes (one socket write each, never one join of the whole)."""
        if isinstance(reply, dict):
            return web.Response(body=jsonrpc.encode(reply), status=status, content_type="application/json")
        if len(reply) == 1:
            return web.Response(body=reply[0], content_type="application/json")

        async def chunks():
            chunk, size = [], 0
            for piece in reply:
                chunk.append(piece)
                size += len(piece)
                if size >= REPLY_CHUNK:
                    yield b"".join(chunk)
                    chunk, size = [], 0
            if chunk:
                yield b"".join(chunk)
        return web.Response(body=chunks(), content_type="application/json")

    def _authorized(self, request: web.Request) -> bool:
        supplied = request.headers.get("Authorization", "")  # aiohttp keeps bytes that are not UTF-8 as surrogates
        return secrets.compare_digest(supplied.encode("utf-8", "surrogateescape"), f"Bearer {self.token}".encode())

    async def _run(self, method: str, params) -> dict:
        """One request's ``result`` or ``error``."""
        try:
            return {"result": await rpc.run(self.node, method, params, self.workers)}
        except rpc.RpcError as error:
            return {"error": error.to_json()}
        except Exception as error:  # a bug must not kill the server: report it
            log.exception("RPC %s failed", method)
            return {"error": {"code": -32603, "message": f"internal error: {error}"}}

    async def _metrics(self, request: web.Request) -> web.Response:
        """Prometheus's text format; no cookie (read-only, no secret: docs/metrics.md)."""
        async with self.gate.held():
            body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.events.subscribers >= MAX_EVENT_SUBSCRIBERS:
            return web.Response(status=503, text=f"/events already has {MAX_EVENT_SUBSCRIBERS} subscribers, "
                                                 f"its limit; try again later\n")
        queue = self.events.subscribe()  # before any await: simultaneous upgrades count at once
        ws = web.WebSocketResponse(max_msg_size=64 * 1024)
        try:
            await ws.prepare(request)
        except BaseException:
            self.events.unsubscribe(queue)
            raise
        self._sockets.add(ws)

        async def drain_incoming():
            async for _ in ws:
                pass
        reader = asyncio.get_running_loop().create_task(drain_incoming())
        try:
            while not reader.done():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                event = getter.result()
                if event is None:
                    break
                await ws.send_str(event)
        except (ConnectionError, aiohttp.ClientError):
            pass
        finally:
            self.events.unsubscribe(queue)
            reader.cancel()
            await ws.close()
            self._sockets.discard(ws)
        return ws


def _cork(sock, on: bool) -> bool:
    """Hold back (True) or let go (False) a TCP socket's partial packets; False
    where that cannot be done (no TCP_CORK, no socket): writes then go as they are."""
    if sock is None or TCP_CORK is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_CORK, int(on))
    except OSError:
        return False
    return True


class PeerLink:
    """One open WebSocket to a peer: a reader feeding the node, a writer draining the outbox.

    The outbox holds what the node sent and the socket has not taken yet; the
    node counts those bytes (``Node.sent`` after each burst of writes) and,
    while they are over its budget, says it is not ``reading`` this peer: the
    reader then waits, so a peer that does not read what it asked for stops
    being read, and its requests stop being answered.

    Writes are coalesced: the writer takes every frame queued by then (at
    most ``BURST_BYTES``) and, when there are several, holds the socket's
    packets back (Linux ``TCP_CORK``) until the last is written, so a
    ``getdata`` answered with 100 txs leaves in a few TCP segments, not 100,
    and the peer reads them in one go. Frames still go one by one, in order,
    and the burst's bytes are reported to the node (``Node.sent``) once, after
    its last frame. The outbox is a plain deque and an event that wakes the
    writer when it was empty: pushing a frame costs an append.

    Every call into the node goes through the gate (``gate.py``): a frame of
    ``OFFLOAD_CHARS`` or more, or one that names a block (a block, an inv or
    a getdata of blocks: rare, and a small block may still reorganize the
    chain), on the validation thread; the rest on the loop, at once when the
    gate is ``free`` (the common case), else after the calls waiting before
    it. The reader hands over the next frame only when the previous one was
    handled, so the peer's messages keep their order. ``reading`` alone is
    asked without the gate: a hint read from two counters, and the frame it
    lets in still waits for the gate."""

    def __init__(self, node: Node, ws, peer_id: int, carry_out, gate: NodeGate):
        self.node = node
        self.ws = ws
        self.peer_id = peer_id
        self.carry_out = carry_out
        self.gate = gate
        self.outbox: deque[str] = deque()  # bounded in bytes by the node's send budget
        self.queued = asyncio.Event()  # set when a frame was pushed or the link is closing
        self.readable = asyncio.Event()
        self.reason: str | None = None  # set once the link is closing

    def push(self, text: str) -> None:
        if self.reason is None:
            self.outbox.append(text)
            self.queued.set()

    def close(self, reason: str) -> None:
        """Stop after what is queued: the node has already forgotten the peer."""
        if self.reason is None:
            self.reason = reason
            self.queued.set()
            self.readable.set()

    def _burst(self) -> list[str]:
        """The frames queued now, oldest first, up to BURST_BYTES (at least one)."""
        outbox, burst, size = self.outbox, [], 0
        while outbox and size < BURST_BYTES:
            text = outbox.popleft()
            burst.append(text)
            size += len(text)
        return burst

    async def _write(self) -> None:
        sock = self.ws.get_extra_info("socket")
        try:
            while self.outbox or self.reason is None:
                if not self.outbox:
                    self.queued.clear()
                    await self.queued.wait()
                    continue
                burst = self._burst()
                corked = len(burst) > 1 and _cork(sock, True)
                try:
                    for text in burst:
                        await self.ws.send_str(text)
                finally:
                    if corked:
                        _cork(sock, False)
                await self._call(self.node.sent, sum(map(len, burst)))
                if not self.readable.is_set() and self.node.reading(self.peer_id):
                    self.readable.set()  # the reader was waiting for the peer to drain
            await self.ws.close()
        except (aiohttp.ClientError, ConnectionError) as error:
            self.close(f"connection error: {error}")

    async def run(self) -> None:
        writer = asyncio.get_running_loop().create_task(self._write())
        ws, node, peer_id, gate = self.ws, self.node, self.peer_id, self.gate
        lost = "connection closed"
        try:
            while True:
                while self.reason is None and not node.reading(peer_id):
                    self.readable.clear()
                    await self.readable.wait()
                if self.reason is not None:
                    break
                msg = await ws.receive()
                if self.reason is not None:
                    break
                kind = msg.type
                if kind is aiohttp.WSMsgType.TEXT:
                    text = msg.data
                    if len(text) >= OFFLOAD_CHARS or '"block"' in text:
                        await gate.offload(lambda: node.frame(peer_id, text), self.carry_out)
                    elif gate.free:
                        self.carry_out(node.frame(peer_id, text))
                    else:
                        await self._call(node.frame, text)
                elif kind is aiohttp.WSMsgType.BINARY:
                    await self._call(node.bad_frame, "binary frame")
                elif kind is aiohttp.WSMsgType.ERROR:
                    await self._call(node.bad_frame, f"bad frame: {ws.exception()}")
                elif kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    break
            if ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG and self.reason is None:
                await self._call(node.bad_frame, "oversize frame")
        except (aiohttp.ClientError, ConnectionError) as error:
            lost = f"connection error: {error}"
        finally:
            self.close(lost)
            await self._call(node.closed, self.reason)
            # asyncio.wait, not wait_for: on 3.11 wait_for can swallow a
            # cancellation of this task when the writer is already done.
            await asyncio.wait({writer}, timeout=5)
            writer.cancel()
            await ws.close()

    async def _call(self, method, *args) -> None:
        """``method(peer_id, *args)`` of the node on the loop, once no validation
        runs and the calls that asked before have had their turn."""
        if self.gate.free:
            self.carry_out(method(self.peer_id, *args))
            return
        async with self.gate.held():
            self.carry_out(method(self.peer_id, *args))
