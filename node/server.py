"""The aiohttp shell: one server per node with ``/p2p``, ``/rpc`` and ``/events``.

This module only moves bytes: it accepts and dials WebSockets, feeds each
text frame to ``Node.on_frame``, writes what the node sends through a
bounded per-peer queue, serves JSON-RPC over HTTP POST, and streams events.
All decisions live in ``node.py``. ``/`` serves the live dashboard page for
this node (``page.py``).

Security defaults: bind 127.0.0.1; admin RPC methods need
``Authorization: Bearer <cookie>`` where the cookie is 64 random hex digits
written to ``DATADIR/.cookie`` with mode 0600 at every start; every frame and
request body is size-limited. Every HTTP request passes two middlewares
first: ``http_limits`` (connection count and idle timeouts) and
``http_guard`` (Host, Origin and the JSON content type: what a web page in
the user's browser may do). A request body must arrive within
``BODY_SECONDS``; ``jsonrpc`` turns any body into an answer, one request at
a time; at most ``MAX_EVENT_SUBSCRIBERS`` clients watch ``/events``.
"""

import asyncio
import contextlib
import gc
import json
import logging
import os
import secrets
import signal
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import aiohttp
from aiohttp import web

from chain.block_rules import ParallelVerifier
from chain.chainstate import ChainState
from chain.params import Network
from chain.sigcache import SignatureCache
from chain.storage import Store

from . import jsonrpc, rpc
from .events import EventBus
from .http_guard import BrowserPolicy, add_cors, guard
from .http_limits import IDLE_SECONDS, Listener, connection_limit
from .mempool import Mempool
from .messages import MAX_FRAME_BYTES
from .miner import Miner
from .node import Node
from .page import add_page_routes, single_node_config

log = logging.getLogger("toychain")

SEND_QUEUE_LIMIT = 10_000
# aiohttp refuses frames of *at least* max_msg_size bytes; the protocol closes
# only frames *over* 4 MiB, so a frame of exactly 4 MiB must get through.
WS_MAX_MSG_SIZE = MAX_FRAME_BYTES + 1
MAX_RPC_BODY = 8 * 1024 * 1024
BODY_SECONDS = 10.0          # 8 MiB in 10 s is 0.8 MB/s; a local client sends it in milliseconds
MAX_EVENT_SUBSCRIBERS = 64   # /events clients: a dashboard tab holds one per node it watches
MAX_CONCURRENT_BATCHES = 4   # batches run at once (each up to 16 MiB of replies); single calls never wait
SHUTDOWN_SECONDS = 5.0       # how long stop() lets requests in progress finish
TICK_SECONDS = 2.0
MAX_BACKOFF = 30.0


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
                 allowed_origins: list[str] = ()):
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
        self.stopped = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._sockets: set[web.WebSocketResponse | aiohttp.ClientWebSocketResponse] = set()
        self._stopping = False
        self.node: Node | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        sigcache = SignatureCache()  # shared: a block's txs were mostly checked in the mempool
        self.verifier = ParallelVerifier(cache=sigcache)
        chain = ChainState(self.net, Store(self.datadir / "chain.sqlite"), verifier=self.verifier)
        gc.freeze()  # the block index just loaded lives forever: keep the collector off it
        mempool = Mempool(chain, self.min_fee_rate, self.max_mempool_bytes, sigcache=sigcache)
        self.events = EventBus()
        self.node = Node(chain, mempool, self.events)
        self.node.dial = self.dial
        self.node.request_stop = lambda: asyncio.get_running_loop().call_soon(self.stopped.set)
        loop = asyncio.get_running_loop()
        flush_pending = False

        def schedule_flush():
            nonlocal flush_pending
            if not flush_pending:
                flush_pending = True
                loop.call_soon(flush)

        def flush():
            nonlocal flush_pending
            flush_pending = False
            self.node.flush_announcements()
        self.node.schedule_flush = schedule_flush

        self.session = aiohttp.ClientSession()
        # generatetoaddress's proof of work, and decoding on a thread; started on first use
        self.workers = rpc.Workers(ProcessPoolExecutor(1), ThreadPoolExecutor(1, thread_name_prefix="rpc"),
                                   rpc.Turns())
        self._batches = asyncio.Semaphore(MAX_CONCURRENT_BATCHES)
        self.listener = Listener(connection_limit())
        self.policy = BrowserPolicy(self.host, self.port, self.allowed_origins)
        app = web.Application(client_max_size=MAX_RPC_BODY,
                              middlewares=[self.listener.track, guard(self.policy)])
        app.router.add_get("/p2p", self._p2p_inbound)
        app.router.add_post("/rpc", self._rpc)
        app.router.add_get("/events", self._events)
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
        for addr in self.initial_peers:
            self.dial(addr, persistent=True)
        if self.miner_owner is not None and (self.mine or self.automine):
            miner = Miner(self.node, self.miner_owner)
            self._spawn(miner.run_pow() if self.mine else miner.run_automine(self.automine))

    async def stop(self) -> None:
        self._stopping = True  # dial loops must not start another round
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
            await asyncio.sleep(TICK_SECONDS)
            self.node.tick()

    # -- peers ------------------------------------------------------------------------------------
    def dial(self, addr: str, persistent: bool = False) -> None:
        self._spawn(self._dial_loop(addr, persistent))

    async def _dial_loop(self, addr: str, persistent: bool) -> None:
        backoff = 1.0
        while not self._stopping:
            if not self.node.is_banned(addr) and addr not in self.node.connected_keys():
                try:
                    ws = await self.session.ws_connect(f"http://{addr}/p2p", max_msg_size=WS_MAX_MSG_SIZE,
                                                       timeout=aiohttp.ClientWSTimeout(ws_close=5))
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
                    log.debug("dial %s failed: %s", addr, error)
                else:
                    backoff = 1.0
                    await self._serve_peer(ws, addr, inbound=False)
            if not persistent:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _p2p_inbound(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=WS_MAX_MSG_SIZE)
        await ws.prepare(request)
        host, port = request.transport.get_extra_info("peername")[:2]
        await self._serve_peer(ws, f"{host}:{port}", inbound=True)
        return ws

    async def _serve_peer(self, ws, addr: str, inbound: bool) -> None:
        outbox: asyncio.Queue = asyncio.Queue()
        closing: list[str] = []

        def send(message: dict) -> None:
            if outbox.qsize() >= SEND_QUEUE_LIMIT:
                close("send queue full (peer too slow)")
            elif not closing:
                outbox.put_nowait(json.dumps(message, separators=(",", ":")))

        def close(reason: str) -> None:
            if not closing:
                closing.append(reason)
                outbox.put_nowait(None)

        async def writer() -> None:
            while (text := await outbox.get()) is not None:
                await ws.send_str(text)
            await ws.close()

        self._sockets.add(ws)
        peer = self.node.new_peer(addr, inbound, send, close)
        write_task = asyncio.get_running_loop().create_task(writer())
        reason = "connection closed"
        try:
            async for msg in ws:
                if closing:
                    break
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.node.on_frame(peer, msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self.node.punish(peer, "binary frame")
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    self.node.punish(peer, f"bad frame: {ws.exception()}")
            if ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG and not closing:
                self.node.punish(peer, "oversize frame")
        except (aiohttp.ClientError, ConnectionError) as error:
            reason = f"connection error: {error}"
        finally:
            close(closing[0] if closing else reason)
            self.node.peer_closed(peer, closing[0] if closing else reason)
            # asyncio.wait, not wait_for: on 3.11 wait_for can swallow a
            # cancellation of this task when write_task is already done.
            await asyncio.wait({write_task}, timeout=5)
            write_task.cancel()
            await ws.close()
            self._sockets.discard(ws)

    # -- RPC and events -------------------------------------------------------------------------
    async def _rpc(self, request: web.Request) -> web.Response:
        try:
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
        """One error object, or the pieces of an answer, sent one by one (chunked)."""
        if isinstance(reply, dict):
            return web.Response(body=jsonrpc.encode(reply), status=status, content_type="application/json")
        if len(reply) == 1:
            return web.Response(body=reply[0], content_type="application/json")

        async def pieces():
            for piece in reply:
                yield piece
        return web.Response(body=pieces(), content_type="application/json")

    def _authorized(self, request: web.Request) -> bool:
        supplied = request.headers.get("Authorization", "")
        return secrets.compare_digest(supplied.encode(), f"Bearer {self.token}".encode())

    async def _run(self, method: str, params) -> dict:
        """One request's ``result`` or ``error``."""
        try:
            return {"result": await rpc.run(self.node, method, params, self.workers)}
        except rpc.RpcError as error:
            return {"error": error.to_json()}
        except Exception as error:  # a bug must not kill the server: report it
            log.exception("RPC %s failed", method)
            return {"error": {"code": -32603, "message": f"internal error: {error}"}}

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
                await ws.send_str(json.dumps(event))
        except (ConnectionError, aiohttp.ClientError):
            pass
        finally:
            self.events.unsubscribe(queue)
            reader.cancel()
            await ws.close()
            self._sockets.discard(ws)
        return ws
