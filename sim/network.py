"""The simulated network: a fake clock, an event queue and in-memory links.

Theory of operation
-------------------
``Simulation`` owns simulated time (``now``, in seconds) and a queue of
events ordered by (time, sequence number). ``run_until(t)`` pops events in
that order and runs them; nothing else advances time, and every random
choice comes from ``sim.rng``, seeded once. The same seed therefore replays
the same run, frame for frame (``trace`` is a digest of every frame, dial
and close; compare two runs' digests to check).

Endpoints (``Endpoint``: honest nodes in ``honest.py``, attackers in
``adversaries.py``) listen on "127.0.0.1:PORT" addresses and dial each
other. A connection has two ``Side`` objects, one per endpoint, and behaves
like a WebSocket over TCP:

* frames arrive in order, each ``latency`` seconds after it was written
  (the latency is drawn per connection);
* a side writes frames only while fewer than ``SOCKET_BUFFER`` bytes it
  wrote are still unread by the other side (a socket buffer), then calls
  ``sent`` on its endpoint once with the bytes of that burst, as the real
  shell does after a burst of writes; so a receiver that stops reading
  stops its sender's writes, and the sender's node sees its queue grow;
* a receiver reads a frame only when its endpoint says ``reading``;
* ``loss`` is the chance that writing a frame resets the connection (TCP
  does not lose frames: it loses connections);
* a ``partition`` puts endpoints in groups: connections between groups are
  reset and dials between them fail until ``heal``.
"""

import hashlib
import heapq
import random
from collections import deque

from chain.params import GENESIS_TIME

START_TIME = float(GENESIS_TIME + 1_000_000)
SOCKET_BUFFER = 256 * 1024   # bytes a side may have written and the other not yet read
LATENCY = (0.002, 0.050)     # seconds, one way; drawn per connection
CONNECT_TIMEOUT = 10.0       # a dial into a partition fails after this long
FIRST_EPHEMERAL_PORT = 40_000


class Side:
    """One end of a connection, as its endpoint sees it."""

    def __init__(self, conn: "Connection", endpoint: "Endpoint", inbound: bool, remote_addr: str):
        self.conn = conn
        self.endpoint = endpoint
        self.inbound = inbound
        self.remote_addr = remote_addr  # the other end's address as this end sees it
        self.outbox: deque[str] = deque()  # frames waiting for room in the socket buffer
        self.unread = 0                    # bytes written by this side, not yet read by the other
        self.arrived: deque[str] = deque()  # frames that reached this side, not yet read
        self.last_arrival = 0.0
        self.open = True
        self.other: "Side" = None  # type: ignore[assignment]

    @property
    def remote(self) -> "Endpoint":
        return self.other.endpoint


class Connection:
    def __init__(self, number: int, latency: float):
        self.number = number
        self.latency = latency


class Endpoint:
    """Something on the simulated network. Subclasses override the hooks."""

    honest = False

    def __init__(self, sim: "Simulation", name: str, listen: str | None):
        self.sim = sim
        self.name = name
        self.listen = listen
        self.sides: list[Side] = []
        sim.add(self)

    # hooks the simulation calls
    def opened(self, side: Side) -> bool:
        """A connection opened (``side.inbound`` says who dialled); False refuses it
        (inbound) or hangs up at once (outbound)."""
        return True

    def dial_failed(self, addr: str) -> None:
        pass

    def frame(self, side: Side, text: str) -> None:
        pass

    def closed(self, side: Side, reason: str) -> None:
        pass

    def sent(self, side: Side, nbytes: int) -> None:
        pass

    def reading(self, side: Side) -> bool:
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class Simulation:
    def __init__(self, seed: int, loss: float = 0.0, latency: tuple[float, float] = LATENCY):
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = START_TIME
        self.loss = loss
        self.latency = latency
        self.endpoints: list[Endpoint] = []
        self.listeners: dict[str, Endpoint] = {}
        self.groups: dict[Endpoint, int] = {}  # partition group of each endpoint (0 when healed)
        self.trace = hashlib.sha256()
        self.frames = 0
        self._queue: list = []
        self._seq = 0
        self._connections = 0
        self._next_port = FIRST_EPHEMERAL_PORT

    # -- time -------------------------------------------------------------------------------
    def at(self, when: float, action, *args) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, action, args))

    def after(self, delay: float, action, *args) -> None:
        self.at(self.now + delay, action, *args)

    def every(self, period: float, action, first: float | None = None) -> None:
        """Run ``action()`` every ``period`` seconds, first at ``first`` (default: one period on)."""
        def tick():
            action()
            self.after(period, tick)
        self.at(self.now + period if first is None else first, tick)

    def run_until(self, when: float, stop=None) -> bool:
        """Run events up to time ``when``; with ``stop``, return True as soon as
        ``stop()`` holds after an event (the clock then stays at that event)."""
        while self._queue and self._queue[0][0] <= when:
            time, _, action, args = heapq.heappop(self._queue)
            self.now = max(self.now, time)
            action(*args)
            if stop is not None and stop():
                return True
        self.now = max(self.now, when)
        return stop is not None and stop()

    def run_for(self, seconds: float, stop=None) -> bool:
        return self.run_until(self.now + seconds, stop)

    # -- endpoints and partitions ----------------------------------------------------------
    def add(self, endpoint: Endpoint) -> None:
        self.endpoints.append(endpoint)
        self.groups[endpoint] = 0
        if endpoint.listen is not None:
            self.listeners[endpoint.listen] = endpoint

    def partition(self, groups: list[list[Endpoint]]) -> None:
        """Split the network: endpoints in different groups cannot talk (those
        not listed stay in group 0). Connections across groups are reset."""
        for number, group in enumerate(groups, start=1):
            for endpoint in group:
                self.groups[endpoint] = number
        self._record("partition", [[e.name for e in g] for g in groups])
        for endpoint in self.endpoints:
            for side in list(endpoint.sides):
                if side.open and not self.reachable(endpoint, side.remote):
                    self.reset(side, "connection lost (partition)")

    def heal(self) -> None:
        for endpoint in self.endpoints:
            self.groups[endpoint] = 0
        self._record("heal")

    def reachable(self, a: Endpoint, b: Endpoint) -> bool:
        return self.groups[a] == self.groups[b]

    # -- connections ------------------------------------------------------------------------
    def dial(self, dialler: Endpoint, addr: str) -> None:
        """``dialler`` opens a connection to ``addr``; the outcome comes later."""
        target = self.listeners.get(addr)
        if target is None or target is dialler:
            if target is dialler:
                self.after(2 * self.latency[0], self._connect, dialler, target, addr)
            else:
                self.after(2 * self.latency[0], self._refused, dialler, addr)
        elif not self.reachable(dialler, target):
            self.after(CONNECT_TIMEOUT, self._refused, dialler, addr)
        else:
            self.after(2 * self.latency[0], self._connect, dialler, target, addr)

    def _refused(self, dialler: Endpoint, addr: str) -> None:
        self._record("refused", dialler.name, addr)
        dialler.dial_failed(addr)

    def _connect(self, dialler: Endpoint, target: Endpoint, addr: str) -> None:
        if not self.reachable(dialler, target) or target.listen not in self.listeners:
            self._refused(dialler, addr)
            return
        self._connections += 1
        conn = Connection(self._connections, self.rng.uniform(*self.latency))
        self._next_port += 1
        source = f"127.0.0.1:{self._next_port}"
        out = Side(conn, dialler, inbound=False, remote_addr=addr)
        inn = Side(conn, target, inbound=True, remote_addr=source)
        out.other, inn.other = inn, out
        self._record("connect", conn.number, dialler.name, target.name)
        target.sides.append(inn)
        if not target.opened(inn):
            target.sides.remove(inn)
            self._refused(dialler, addr)
            return
        dialler.sides.append(out)
        if not dialler.opened(out):
            self.close(out, "hung up")

    def send(self, side: Side, text: str) -> None:
        """``side``'s endpoint writes a frame (it waits for buffer room if need be)."""
        if not side.open:
            return
        side.outbox.append(text)
        self._write(side)

    def _write(self, side: Side) -> None:
        written = 0
        while side.open and side.outbox and (side.unread == 0 or
                                             side.unread + len(side.outbox[0]) <= SOCKET_BUFFER):
            text = side.outbox.popleft()
            if self.loss and self.rng.random() < self.loss:
                self.reset(side, "connection lost (reset)")
                return
            side.unread += len(text)
            arrival = max(self.now + side.conn.latency, side.other.last_arrival)
            side.other.last_arrival = arrival
            self.at(arrival, self._arrive, side.other, text)
            written += len(text)
        if written:  # once per burst, as the shell's peer link reports it
            side.endpoint.sent(side, written)

    def _arrive(self, side: Side, text: str) -> None:
        if side.open:
            side.arrived.append(text)
            self.pump(side)

    def pump(self, side: Side) -> None:
        """Let ``side``'s endpoint read what has arrived, while it is reading."""
        while side.open and side.arrived and side.endpoint.reading(side):
            text = side.arrived.popleft()
            side.other.unread -= len(text)
            self.frames += 1
            self._record("frame", side.conn.number, side.other.endpoint.name, text)
            side.endpoint.frame(side, text)
            self._write(side.other)

    def pump_all(self, endpoint: Endpoint) -> None:
        for side in list(endpoint.sides):
            if side.arrived:
                self.pump(side)

    def close(self, side: Side, reason: str) -> None:
        """``side``'s endpoint closes: what it queued still goes, then the close."""
        if not side.open:
            return
        side.open = False
        side.endpoint.sides.remove(side)
        arrival = side.other.last_arrival
        for text in side.outbox:
            arrival = max(self.now + side.conn.latency, arrival)
            self.at(arrival, self._arrive, side.other, text)
        side.outbox.clear()
        self._record("close", side.conn.number, side.endpoint.name, reason)
        self.at(max(self.now + side.conn.latency, arrival), self._remote_closed, side.other)

    def _remote_closed(self, side: Side) -> None:
        if side.open:
            self.pump(side)
        if side.open:
            side.open = False
            side.endpoint.sides.remove(side)
            side.endpoint.closed(side, "connection closed")

    def reset(self, side: Side, reason: str) -> None:
        """The connection breaks: both ends learn it now, unread frames are lost."""
        self._record("reset", side.conn.number, reason)
        for end in (side, side.other):
            if end.open:
                end.open = False
                end.endpoint.sides.remove(end)
                end.endpoint.closed(end, reason)

    def _record(self, *what) -> None:
        self.trace.update(repr((round(self.now, 6), what)).encode())

    def digest(self) -> str:
        return self.trace.hexdigest()
