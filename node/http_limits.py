"""How many HTTP connections a node keeps open, and for how long when they
do nothing: the defence against connection floods and slowloris.

Every connection costs a file descriptor, and a process has a fixed number
of them (``ulimit -n``, often 1,024). A client that opens sockets and never
finishes a request (slowloris), or keeps idle keep-alive connections, would
otherwise use them all up; the kernel then queues the local user's
``getblockchaininfo`` behind them, unanswered. So:

* a connection that is not in the middle of a request (just opened, still
  sending its headers, or idle between keep-alive requests) is closed after
  ``IDLE_SECONDS``;
* at most ``limit`` connections are open (``connection_limit``: 512, or
  fewer when the descriptor limit is low); a new one arriving at the limit
  makes room by closing the connection idle the longest, so a flood of idle
  sockets cannot lock out a client that actually sends a request.

Connections inside a request (an RPC being answered, a ``/p2p`` or
``/events`` WebSocket) are never idle here: those have their own limits
(the body timeout, the peer and subscriber caps).

``ConnectionTable`` holds the bookkeeping and makes the decisions without
I/O; ``Listener`` is the asyncio glue that feeds it and closes what it says.
"""

import asyncio
import contextlib
import logging
import resource
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger("toychain")

IDLE_SECONDS = 10.0   # a local client sends its request within milliseconds; a browser reopens
                      # a closed keep-alive connection by itself; a slow remote peer still gets
                      # 10 s to complete its WebSocket handshake
MAX_CONNECTIONS = 512
BACKLOG = 64          # connections the kernel queues, and asyncio accepts in one go before any is admitted
# Descriptors beyond the limit. asyncio accepts a burst of up to BACKLOG sockets in one callback
# and admits each in a task that runs on a later turn of the loop, after which the victims'
# descriptors are released only on the turn after that: by then a second burst may already have
# been accepted. So two bursts, plus 32 for SQLite, worker processes, outbound peers and logs.
FD_RESERVE = 2 * BACKLOG + 32
MIN_CONNECTIONS = 16
SWEEP_SECONDS = 1.0


def connection_limit() -> int:
    """``MAX_CONNECTIONS``, lowered to fit the process's descriptor limit
    after raising its soft limit towards the hard one (as Bitcoin Core does)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, soft - FD_RESERVE))


@dataclass
class _State:
    busy: int = 0         # requests in progress on this connection
    idle_since: float = 0.0
    seen: bool = False    # the server has listed it as open at least once
    closing: bool = False  # chosen to be closed: no longer counted, never chosen twice


class ConnectionTable:
    """Per connection: how many requests it is inside, and since when it has
    been idle. Connections are any hashable objects; ``live`` is what the
    server lists as open, from which the table learns which ones closed."""

    def __init__(self, limit: int, idle_seconds: float = IDLE_SECONDS):
        self.limit = limit
        self.idle_seconds = idle_seconds
        self._state: dict[object, _State] = {}

    def __len__(self) -> int:
        return len(self._state)

    def admit(self, conn, now: float, live) -> list:
        """A new connection (not yet in ``live``); returns the connections to
        close to make room for it (idle longest first), often none."""
        self._update(now, live)
        # Admitted but not yet open ones count too: asyncio accepts a whole burst before
        # admitting any; they are not closed themselves (aiohttp would then leave them open).
        open_ = [c for c, state in self._state.items() if not state.closing]
        idle = sorted((c for c in open_ if self._state[c].busy == 0 and self._state[c].seen),
                      key=lambda c: self._state[c].idle_since)
        victims = idle[:max(0, len(open_) + 1 - self.limit)]
        for victim in victims:
            self._state[victim].closing = True
        self._state[conn] = _State(idle_since=now)
        return victims

    def request_started(self, conn, now: float) -> None:
        self._state.setdefault(conn, _State(idle_since=now)).busy += 1

    def request_finished(self, conn, now: float) -> None:
        state = self._state.setdefault(conn, _State())
        state.busy = max(0, state.busy - 1)
        state.idle_since = now

    def expired(self, now: float, live) -> list:
        """Connections idle for longer than ``idle_seconds``: close them."""
        expired = [c for c in self._update(now, live) if self._state[c].busy == 0
                   and not self._state[c].closing and now - self._state[c].idle_since > self.idle_seconds]
        for conn in expired:
            self._state[conn].closing = True
        return expired

    def _update(self, now: float, live) -> list:
        """Mark ``live`` as seen; forget connections that closed (seen before, not
        live now) and admitted ones that never opened within ``idle_seconds``."""
        live = list(live)
        for conn in live:
            self._state.setdefault(conn, _State(idle_since=now)).seen = True
        open_now = set(live)
        for conn, state in list(self._state.items()):
            if conn not in open_now and (state.seen or now - state.idle_since > self.idle_seconds):
                del self._state[conn]
        return live


class Listener:
    """The listening socket of an aiohttp ``AppRunner``, with the table's
    limits applied: use ``track`` as the app's first middleware."""

    def __init__(self, limit: int):
        self.runner: web.AppRunner | None = None
        self.table = ConnectionTable(limit)
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task | None = None

    @web.middleware
    async def track(self, request: web.Request, handler):
        self.table.request_started(request.protocol, asyncio.get_running_loop().time())
        try:
            return await handler(request)
        finally:
            self.table.request_finished(request.protocol, asyncio.get_running_loop().time())

    def _connection(self):
        """The protocol factory: a new aiohttp connection, admitted."""
        handler = self.runner.server()
        for victim in self.table.admit(handler, asyncio.get_running_loop().time(),
                                       self.runner.server.connections):
            victim.force_close()
        return handler

    async def bind(self, runner: web.AppRunner, host: str, port: int) -> int:
        """Listen for ``runner`` (not serving yet); returns the port, the OS's choice for 0."""
        self.runner = runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._connection, host, port, backlog=BACKLOG,
                                                start_serving=False)
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        await self._server.start_serving()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            for handler in self.table.expired(loop.time(), self.runner.server.connections):
                handler.force_close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.wait({self._sweeper})
        if self._server is not None:
            self._server.close()
