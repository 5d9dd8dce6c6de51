"""Helpers for tests that run real nodes: aiohttp servers on 127.0.0.1 with
ephemeral ports, all in this process, waited on by condition, never by sleep.

    async def scenario(tmp_path):
        async with Network(tmp_path, 3, topology="line") as net:
            a, b, c = net.nodes          # NodeServer objects; .node is the Node
            net.call(a, "generatetoaddress", 5, address("alice"))
            await wait_for(lambda: c.node.chain.height == 5)

    def test_it(tmp_path):
        run(scenario(tmp_path))
"""

import asyncio
import threading
import time

import aiohttp

from chain.address import encode_address
from chain.params import REGTEST, Network as Params
from node import rpc
from node.server import NodeServer

from .helpers import owner


def run(coroutine, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def address(name) -> str:
    return encode_address(owner(name))


async def wait_for(condition, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition()`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def settle(server: NodeServer) -> None:
    """Block (on the node's loop) until its validation thread (node/gate.py) is
    idle: a block a peer sent may still be connecting there. No new work can
    start there until the caller returns to the loop, so the caller may then
    read or call the node directly, as a test does."""
    server.gate.thread.submit(lambda: None).result(60)


async def http_rpc(server: NodeServer, method: str, *params, admin: bool = False) -> dict:
    """One JSON-RPC call over real HTTP (with the cookie when ``admin``); the whole reply."""
    headers = {"Authorization": f"Bearer {server.token}"} if admin else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://{server.node.listen}/rpc", json=body, headers=headers) as response:
            return await response.json()


async def start_node(datadir, peers=(), net: Params = REGTEST, **kwargs) -> NodeServer:
    server = NodeServer(net, datadir, port=0, peers=list(peers), **kwargs)
    await server.start()
    return server


class Network:
    """N nodes in ``tmp_path/node<i>``, connected as a ``line`` (each dials the
    previous one), a ``star`` (all dial node 0) or not at all (``none``)."""

    def __init__(self, tmp_path, count: int, topology: str = "line", net: Params = REGTEST, **kwargs):
        self.tmp_path = tmp_path
        self.count = count
        self.topology = topology
        self.net = net
        self.kwargs = kwargs
        self.nodes: list[NodeServer] = []

    async def __aenter__(self) -> "Network":
        for i in range(self.count):
            peers = []
            if i and self.topology == "line":
                peers = [self.nodes[i - 1].node.listen]
            elif i and self.topology == "star":
                peers = [self.nodes[0].node.listen]
            self.nodes.append(await start_node(self.tmp_path / f"node{i}", peers, self.net, **self.kwargs))
        if self.topology != "none":
            await self.wait_connected()
        return self

    async def wait_connected(self, timeout: float = 10.0) -> None:
        def links() -> int:
            return sum(1 for s in self.nodes for p in s.node.peers.values() if p.handshake_done)
        want = 2 * (self.count - 1)
        await wait_for(lambda: links() >= want, timeout, f"{want} peer links")

    async def __aexit__(self, *exc) -> None:
        for server in self.nodes:
            if server.node is not None and not server.stopped.is_set():
                await server.stop()
                server.stopped.set()

    @staticmethod
    def call(server: NodeServer, method: str, *params):
        """An RPC call straight into the node's method table (raises rpc.RpcError),
        once the node's validation thread (node/gate.py) has finished what it
        was doing: a block a peer sent may still be connecting there."""
        settle(server)
        return rpc.call(server.node, method, list(params))

    async def wait_synced(self, timeout: float = 20.0) -> None:
        await wait_for(lambda: len({s.node.chain.tip.hash for s in self.nodes}) == 1,
                       timeout, "all nodes on the same tip")


class NodeThread:
    """One node on its own event loop in a background thread, for synchronous
    tests (hypothesis) that talk to it over real HTTP on 127.0.0.1::

        with NodeThread(tmp_path / "n") as node:      # node.server is the NodeServer
            http.client.HTTPConnection("127.0.0.1", node.port) ...
            node.run(some_coroutine(node.server))     # on the node's own loop
            node.sync(node.server.node.chain.store.utxo_stats)  # a function on its thread
    """

    def __init__(self, datadir, **kwargs):
        self.datadir = datadir
        self.kwargs = kwargs
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="node", daemon=True)

    def run(self, coroutine, timeout: float = 60):
        """Run ``coroutine`` on the node's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def sync(self, function, *args):
        """``function(*args)`` on the node's loop, once no validation runs (node/gate.py)."""
        async def call():
            async with self.server.gate.held():
                return function(*args)
        return self.run(call())

    @property
    def port(self) -> int:
        return self.server.port

    def __enter__(self) -> "NodeThread":
        self.thread.start()
        self.server = self.run(start_node(self.datadir, **self.kwargs))
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.run(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
