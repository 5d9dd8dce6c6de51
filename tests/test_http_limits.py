"""Connections that do nothing cannot lock the local user out (node/http_limits.py):
idle and half-sent requests are closed after ``IDLE_SECONDS``, a body must
arrive within ``BODY_SECONDS``, a flood of idle sockets makes the node close
the longest-idle ones instead of running out of file descriptors, and
``/events`` takes at most ``MAX_EVENT_SUBSCRIBERS``.

The table's decisions are checked without I/O; the timeouts against a real
node on 127.0.0.1; the flood against ``python -m node`` run with a small
descriptor limit (256, as a busy desktop could have), where today's node
stops accepting anyone once the flood has taken every descriptor.
"""

import asyncio
import json
import resource
import socket
import subprocess
import sys
import time
import urllib.request

import aiohttp

from node import http_limits, server as node_server
from node.http_limits import ConnectionTable

from .helpers import wait_until
from .nodes import run, start_node, wait_for
from .test_cli import free_port

GETBLOCKCHAININFO = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getblockchaininfo"}).encode()


# -- the table, without I/O ------------------------------------------------------------------------

def test_a_new_connection_at_the_limit_closes_the_longest_idle_one():
    table = ConnectionTable(limit=3, idle_seconds=10)
    live = []
    for name, now in (("a", 0.0), ("b", 1.0), ("c", 2.0)):
        assert table.admit(name, now, live) == []
        live.append(name)                # the server lists it open once it is connected
    table.request_started("a", 2.5)      # a is answering a request (or is a WebSocket): never closed
    assert table.admit("d", 3.0, live) == ["b"]
    assert table.admit("e", 3.1, live) == ["c"]   # b is already closing: not chosen twice
    live = ["a", "d", "e"]               # the server closed b and c
    table.request_finished("d", 3.5)     # d was used: now e is the one idle longest
    assert table.admit("f", 4.0, live) == ["e"]
    assert len(table) == 4               # b and c are forgotten once the server no longer lists them
    table.request_started("d", 5.0)
    table.request_started("f", 5.0)
    assert table.admit("g", 6.0, ["a", "d", "f"]) == []   # nothing idle: nothing to close


def test_a_burst_of_accepted_connections_counts_before_it_is_open():
    """asyncio accepts up to BACKLOG sockets before admitting any: those count
    against the limit at once, and the oldest idle open ones make room."""
    table = ConnectionTable(limit=4, idle_seconds=10)
    for name in "ab":
        table.admit(name, 0.0, [])
    live = ["a", "b"]
    assert [table.admit(n, 1.0, live) for n in "cdef"] == [[], [], ["a"], ["b"]]
    assert table.admit("g", 1.0, live) == []   # only admitted ones left: never closed before they open
    assert table.admit("h", 2.0, ["c", "d", "e", "f", "g"]) == ["c", "d"]  # five open, h coming: 4 left


def test_idle_connections_expire_but_busy_ones_never_do():
    table = ConnectionTable(limit=100, idle_seconds=10)
    for name in "abc":
        table.admit(name, 0.0, [])
    table.request_started("b", 1.0)
    table.request_started("c", 1.0)
    table.request_finished("c", 5.0)
    assert table.expired(9.0, "abc") == []
    assert table.expired(10.5, "abc") == ["a"]
    assert table.expired(15.5, "abc") == ["c"]            # a is already being closed: once only
    assert table.expired(1000.0, "abc") == []             # b is still inside its request
    table.request_finished("b", 1000.0)
    assert table.expired(1011.0, "b") == ["b"]
    # Admitted but never listed open (its accept failed): forgotten after idle_seconds.
    table.admit("ghost", 1011.0, "b")
    table.expired(1015.0, "b")
    assert len(table) == 2
    table.expired(1022.0, "b")
    assert len(table) == 1


def test_the_limit_fits_the_descriptor_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
        limit = http_limits.connection_limit()   # raises the soft limit towards what it wants
        soft_now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert limit == min(http_limits.MAX_CONNECTIONS, soft_now - http_limits.FD_RESERVE)
        assert soft_now == min(hard, http_limits.MAX_CONNECTIONS + http_limits.FD_RESERVE)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- a real node ---------------------------------------------------------------------------------------

async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> float:
    """Seconds until the node closes this connection (reading and dropping any reply)."""
    start = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except ConnectionError:
        pass
    return time.monotonic() - start


def test_idle_half_sent_and_kept_alive_connections_are_closed(tmp_path):
    """Each kind of idle connection is closed after IDLE_SECONDS (give or take a
    sweep); a body that does not arrive gets 408 after BODY_SECONDS; a
    connection kept alive is still usable while it is fresh."""
    idle = http_limits.IDLE_SECONDS

    async def scenario():
        server = await start_node(tmp_path / "n")
        port = server.port
        host = f"Host: 127.0.0.1:{port}\r\n".encode()
        try:
            silent = await asyncio.open_connection("127.0.0.1", port)
            half = await asyncio.open_connection("127.0.0.1", port)
            half[1].write(b"GET / HTTP/1.1\r\n" + host)          # headers never finished
            kept = await asyncio.open_connection("127.0.0.1", port)
            slow_body = await asyncio.open_connection("127.0.0.1", port)
            slow_body[1].write(b"POST /rpc HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
                               b"Content-Length: 1000\r\n\r\n{")     # 1 byte of 1,000
            request = (b"POST /rpc HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
                       + f"Content-Length: {len(GETBLOCKCHAININFO)}\r\n\r\n".encode() + GETBLOCKCHAININFO)
            kept[1].write(request)
            assert (await kept[0].readline()).startswith(b"HTTP/1.1 200")
            trickle = asyncio.get_running_loop().create_task(_trickle(half[1]))
            kept[1].write(request)  # within the idle time, a kept-alive connection is used again
            closes = await asyncio.gather(
                closed_by_server(silent[0], idle + 5), closed_by_server(half[0], idle + 5),
                closed_by_server(kept[0], idle + 5), _body_refused(slow_body[0], node_server.BODY_SECONDS + 5))
            trickle.cancel()
            for name, seconds in zip(("silent", "half-sent headers", "kept alive"), closes[:3]):
                assert idle - 1 <= seconds <= idle + http_limits.SWEEP_SECONDS + 2, (name, seconds)
            assert closes[3].startswith(b"HTTP/1.1 408"), closes[3]
            # The node still answers a fresh client at once.
            async with aiohttp.ClientSession() as session:
                async with session.post(f"http://127.0.0.1:{port}/rpc", data=GETBLOCKCHAININFO,
                                        headers={"Content-Type": "application/json"}) as response:
                    assert (await response.json())["result"]["height"] == 0
        finally:
            await server.stop()
    run(scenario())


async def _trickle(writer: asyncio.StreamWriter) -> None:
    """Slowloris: one more header byte every second, never the end of the headers."""
    while True:
        await asyncio.sleep(1)
        writer.write(b"X")


async def _body_refused(reader: asyncio.StreamReader, timeout: float) -> bytes:
    return await asyncio.wait_for(reader.readline(), timeout)


def test_events_take_at_most_their_subscriber_limit(tmp_path):
    async def scenario():
        server = await start_node(tmp_path / "n")
        url = f"http://127.0.0.1:{server.port}/events"
        try:
            async with aiohttp.ClientSession() as session:
                sockets = [await session.ws_connect(url) for _ in range(node_server.MAX_EVENT_SUBSCRIBERS)]
                await wait_for(lambda: server.events.subscribers == node_server.MAX_EVENT_SUBSCRIBERS, 10,
                               "every subscription")
                async with session.get(url, headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                                     "Sec-WebSocket-Version": "13",
                                                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as refused:
                    assert refused.status == 503
                    assert (await refused.text()).startswith("/events already has 64 subscribers")
                await sockets.pop().close()
                await wait_for(lambda: server.events.subscribers == node_server.MAX_EVENT_SUBSCRIBERS - 1, 10,
                               "one subscriber gone")
                sockets.append(await session.ws_connect(url))   # a place is free again
                for ws in sockets:
                    await ws.close()
        finally:
            await server.stop()
    run(scenario())


# -- a flood against a node process with few descriptors ---------------------------------------------

FD_LIMIT = 256  # a connection limit of 96 (FD_RESERVE kept): more than one accept burst (BACKLOG)
FLOOD = 300     # more sockets than the node has descriptors


def _limit_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def getblockchaininfo(port: int, timeout: float) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/rpc", data=GETBLOCKCHAININFO,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["result"]


def test_a_flood_of_idle_sockets_does_not_lock_out_the_local_user(tmp_path):
    port = free_port()
    log = open(tmp_path / "node.log", "w")
    node = subprocess.Popen([sys.executable, "-m", "node", "--datadir", str(tmp_path / "data"),
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=_limit_descriptors)
    flood = []
    try:
        wait_until(lambda: _answers(port), 20, "the node to answer")
        for i in range(FLOOD):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:  # half of them start a request and never finish it
                sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            flood.append(sock)
        # The flood has been accepted (or closed) by now; the user's call is answered at once.
        started = time.monotonic()
        assert getblockchaininfo(port, timeout=5)["height"] == 0
        assert time.monotonic() - started < 5
        # The node made room by closing the flood's oldest idle sockets, never running out.
        closed = sum(_closed(sock) for sock in flood)
        assert closed >= FLOOD - (FD_LIMIT - http_limits.FD_RESERVE), closed
        assert node.poll() is None
        assert "out of system resource" not in (tmp_path / "node.log").read_text()
    finally:
        for sock in flood:
            sock.close()
        node.terminate()
        node.wait(20)
        log.close()


def _answers(port: int) -> bool:
    try:
        getblockchaininfo(port, timeout=2)
        return True
    except OSError:
        return False


def _closed(sock: socket.socket) -> bool:
    """Did the node close this socket? (reads what is there without waiting long)"""
    sock.settimeout(0.05)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True
