#!/usr/bin/env python3
"""RPC loop-lag benchmark: how long heavy public RPC calls hold a node's event loop.

While a node answers one call, every peer, ping and other client waits; the
goal (issue 10) is that no public call holds the loop for more than 100 ms.

What it measures
----------------
A regtest ``toychain node`` process (``python -m node``) is funded over RPC:
1,100 blocks to carol (1,100 coins and history rows), then fan-out txs of
10,000 outputs each, signed here (``tests.helpers.make_tx``): one to 10,000
distinct random owners (so every coin needs its own address encoding, the
worst case), the others to bob, dave and erin. ``--coins`` sets the total.

Two probes in this process then watch the node: a P2P peer (WebSocket
``/p2p``, after the version handshake) sends a ``ping`` every 10 ms and times
its ``pong``; an HTTP client times ``getbestblockhash`` every 10 ms. A node
answers both only from its event loop, so the longest round trip of a
phase is the longest the loop was held (plus a fraction of a millisecond of
network stack). Each phase's load runs in a separate process (so that
decoding megabytes of replies does not hold this process's GIL, and so the
probes): one or more JSON-RPC batches sent at once, replies read and
discarded.

Phases
------
idle                     nothing
listunspent pages        batch of 1,000 x listunspent [null, 1, {"limit": 1000}]
listunspent 1,000 owners batch of 1,000 x listunspent pages of the random owners' coins
                         (10 different pages in turn: 10,000 addresses to encode, more
                         than the node's cache of 4,096)
listunspent 500 addresses batch of 150 x listunspent of 500 random owners' addresses (the
                         most one call may name: each is decoded)
listunspent unpaged      batch of 1,000 x listunspent [] (each: more than 1,000 coins, -8)
history pages            batch of 1,000 x getaddresshistory [carol, {"limit": 1000}]
all at once              the four batches above together
decode 1 MB txs          batch of 3 x decoderawtransaction of a 1 MB tx of 7,000 inputs
                         with distinct public keys (the largest a body of 8 MiB holds)
mempool scans            with ``--mempool`` txs (20,000) waiting, from bob to carol: batches
                         of 100 x getaddresshistory [dave] (reads every entry), 100 x
                         listunspent [[carol], 0, {"limit": 1000}] and 20 x getrawmempool
generatetoaddress devnet a devnet node mines 20 blocks by RPC (its proof of work in a
                         worker process) while the probes watch that node

For each phase: its duration, the 1-minute load average at its end, the
probes' longest and 99th-percentile round trips, and PASS when the longest
ping stays within 100 ms. The machine's speed is given as the time of one
raw libsecp256k1 verify (coincurve) in the same run, and each longest stall
also in those units. The node, the load process and the probes share the
machine's CPUs: on a machine that other work keeps busy, the node waits for
a CPU too and every round trip grows (``--quiet-wait`` first waits for a
load average below 1).

How to run
----------
From the repository root::

    .venv/bin/python scripts/bench_rpc_lag.py              # 40,000 coins
    .venv/bin/python scripts/bench_rpc_lag.py --coins 100000
    .venv/bin/python scripts/bench_rpc_lag.py --batch 5     # an old node: a call takes seconds

Everything listens on 127.0.0.1 with ports the OS picks; node processes get
SIGTERM at the end (and from the kernel if this process dies); their data
directory is a temporary directory removed at the end.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import coincurve  # noqa: E402

from chain.address import encode_address  # noqa: E402
from chain.coins import Coin  # noqa: E402
from chain.params import DEVNET, REGTEST  # noqa: E402
from chain.tx import OutPoint, Tx, TxIn, TxOut  # noqa: E402
from tests.helpers import make_tx, owner  # noqa: E402

HOST = "127.0.0.1"
GOAL_MS = 100
PROBE_SECONDS = 0.01
FAN_OUT = 10_000
FEE = 2_000_000


# -- a node process and its RPC ------------------------------------------------------------------------

def _die_with_parent():  # in the child, between fork and exec
    with contextlib.suppress(Exception):
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Node:
    def __init__(self, directory: Path, network: str):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.datadir = directory / network
        self.log = open(directory / f"{network}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "node", "--network", network, "--datadir", str(self.datadir),
             "--port", str(self.port)], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError, KeyError):
                self.call("getbestblockhash")
                break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"the {network} node did not start; see {self.log.name}")
            time.sleep(0.1)
        self.token = (self.datadir / ".cookie").read_text()

    def call(self, method: str, *params, admin: bool = False, timeout: float = 600):
        reply = post(self.port, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                     self.token if admin else None, timeout)
        reply = json.loads(reply)
        if "error" in reply:
            raise SystemExit(f"{method}: {reply['error']}")
        return reply["result"]

    def stop(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(20)
        if self.process.poll() is None:
            self.process.kill()
        self.log.close()


def post(port: int, body, token: str | None = None, timeout: float = 600) -> bytes:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://{HOST}:{port}/rpc", data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


# -- funding -----------------------------------------------------------------------------------------

def fill_mempool(node: Node, count: int) -> None:
    """``count`` one-input txs from bob to carol in the mempool (a fan-out to bob first)."""
    unspent = node.call("listunspent", [encode_address(owner("alice"))], 1)[0]  # (a few hundred)
    coin = (OutPoint(bytes.fromhex(unspent["txid"]), unspent["index"]),
            Coin(unspent["amount"], owner("alice"), 0, True))
    each = (unspent["amount"] - FEE) // count
    fan_out = make_tx([coin], "alice", [("bob", each)] * count)
    node.call("sendrawtransaction", fan_out.raw.hex())
    node.call("generatetoaddress", 1, encode_address(owner("alice")), admin=True)
    txs = [make_tx([(OutPoint(fan_out.txid, i), Coin(each, owner("bob"), 0, False))], "bob",
                   [("carol", each - 300)]) for i in range(count)]
    for i in range(0, count, 1000):
        post(node.port, [{"jsonrpc": "2.0", "id": j, "method": "sendrawtransaction", "params": [tx.raw.hex()]}
                         for j, tx in enumerate(txs[i:i + 1000])])
    if len(node.call("getrawmempool")) != count:
        raise SystemExit("the mempool did not take every tx")


def fund(node: Node, coins: int) -> list[str]:
    """Coins as described above; returns the random owners' addresses."""
    fan_outs = max(1, coins // FAN_OUT)
    node.call("generatetoaddress", 100 + fan_outs, encode_address(owner("alice")), admin=True)
    node.call("generatetoaddress", 1100, encode_address(owner("carol")), admin=True)
    unspent = node.call("listunspent", [encode_address(owner("alice"))], 1)[:fan_outs]
    rng = random.Random(1)
    strangers = [rng.randbytes(20) for _ in range(FAN_OUT)]
    for i, row in enumerate(unspent):
        coin = (OutPoint(bytes.fromhex(row["txid"]), row["index"]),
                Coin(row["amount"], owner("alice"), 0, True))
        each = (row["amount"] - FEE) // FAN_OUT
        to = strangers if i == 0 else [("bob", "dave", "erin")[j % 3] for j in range(FAN_OUT)]
        tx = make_tx([coin], "alice", [(who, each) for who in to])
        node.call("sendrawtransaction", tx.raw.hex())
        node.call("generatetoaddress", 1, encode_address(owner("alice")), admin=True)
    return [encode_address(s) for s in strangers]


def big_tx_hex() -> str:
    """A 1 MB tx of 7,000 inputs, each with its own valid public key (never valid as a
    spend: decoderawtransaction does not check it)."""
    rng = random.Random(2)
    keys = [coincurve.PrivateKey(rng.randbytes(32)).public_key.format() for _ in range(7000)]
    inputs = tuple(TxIn(rng.randbytes(32), 0, key, bytes(64)) for key in keys)
    return Tx(1, inputs, (TxOut(1, bytes(20)),), 0).raw.hex()


# -- probes --------------------------------------------------------------------------------------------

class Probes:
    """A P2P ping and an RPC call, each every 10 ms, timed."""

    def __init__(self, port: int, network):
        self.port, self.network = port, network
        self.pings: list[float] = []
        self.calls: list[float] = []
        self._stop = False

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"http://{HOST}:{self.port}/p2p", max_msg_size=64 * 1024 * 1024)
            await self._handshake(ws)
            await asyncio.gather(self._ping(ws), self._call(session))
            await ws.close()

    async def _handshake(self, ws) -> None:
        genesis = self.network.genesis.hash.hex()
        await ws.send_json({"type": "version", "network": self.network.name, "genesis": genesis, "protocol": 1,
                            "nonce": random.getrandbits(63), "height": 0, "best": genesis,
                            "user_agent": "/bench_rpc_lag/", "listen": f"{HOST}:1"})
        seen = set()
        while not {"version", "verack"} <= seen:
            seen.add((await ws.receive_json())["type"])
        await ws.send_json({"type": "verack"})

    async def _ping(self, ws) -> None:
        while not self._stop:
            nonce = random.getrandbits(63)
            started = time.perf_counter()
            await ws.send_json({"type": "ping", "nonce": nonce})
            while True:
                message = await ws.receive_json()
                if message["type"] == "pong" and message["nonce"] == nonce:
                    break
                if message["type"] == "ping":  # the node checks on us too (every 30 s)
                    await ws.send_json({"type": "pong", "nonce": message["nonce"]})
            self.pings.append(time.perf_counter() - started)
            await asyncio.sleep(PROBE_SECONDS)

    async def _call(self, session) -> None:
        body = {"jsonrpc": "2.0", "id": 1, "method": "getbestblockhash"}
        while not self._stop:
            started = time.perf_counter()
            async with session.post(f"http://{HOST}:{self.port}/rpc", json=body) as response:
                await response.read()
            self.calls.append(time.perf_counter() - started)
            await asyncio.sleep(PROBE_SECONDS)

    def take(self) -> tuple[list[float], list[float]]:
        pings, calls = self.pings, self.calls
        self.pings, self.calls = [], []
        return pings, calls


def _load(port: int, batches: list, token: str | None) -> None:
    """In a child process: send the batches at once, read and discard the replies."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(len(batches)) as pool:
        for future in [pool.submit(post, port, batch, token) for batch in batches]:
            future.result()


async def phase(probes: Probes, name: str, port: int, batches: list, token: str | None = None,
                idle_seconds: float = 2.0) -> dict:
    probes.take()
    started = time.perf_counter()
    if batches:
        child = multiprocessing.get_context("spawn").Process(target=_load, args=(port, batches, token))
        child.start()
        while child.is_alive():
            await asyncio.sleep(0.05)
        if child.exitcode:
            raise SystemExit(f"phase {name!r}: the load process failed (exit {child.exitcode})")
    else:
        await asyncio.sleep(idle_seconds)
    seconds = time.perf_counter() - started
    pings, calls = probes.take()
    return {"phase": name, "seconds": round(seconds, 2), "load": round(os.getloadavg()[0], 2), "pings": len(pings),
            "ping_max_ms": round(max(pings) * 1000, 1), "ping_p99_ms": round(_p99(pings) * 1000, 1),
            "rpc_max_ms": round(max(calls) * 1000, 1), "rpc_p99_ms": round(_p99(calls) * 1000, 1)}


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


def batch(method: str, params: list, count: int) -> list[dict]:
    return [{"jsonrpc": "2.0", "id": i, "method": method, "params": params} for i in range(count)]


def raw_verify_us() -> float:
    key = coincurve.PrivateKey(bytes(31) + b"\x01")
    digest = bytes(range(32))
    signature = key.sign(digest, hasher=None)
    public = coincurve.PublicKey(key.public_key.format())
    rounds = 5000
    started = time.perf_counter()
    for _ in range(rounds):
        public.verify(signature, digest, hasher=None)
    return (time.perf_counter() - started) / rounds * 1e6


async def measure(args, directory: Path) -> list[dict]:
    results = []
    regtest = Node(directory, "regtest")
    try:
        print(f"funding {args.coins:,} coins ...", flush=True)
        started = time.perf_counter()
        strangers = fund(regtest, args.coins)
        print(f"  {regtest.call('gettxoutsetinfo')['utxos']:,} coins in {time.perf_counter() - started:.0f} s",
              flush=True)
        probes = Probes(regtest.port, REGTEST)
        watching = asyncio.get_running_loop().create_task(probes.run())
        while not probes.pings:
            await asyncio.sleep(0.05)
        size = args.batch  # 1,000: the most a batch may hold
        pages = batch("listunspent", [None, 1, {"limit": 1000}], size)
        strangers_tx = regtest.call("listunspent", strangers[:1])[0]["txid"]
        owners = [{"jsonrpc": "2.0", "id": i, "method": "listunspent", "params": [None, 1, {
            "limit": 1000, "after": {"txid": strangers_tx, "index": i % 10 * 1000, "confirmations": 1}}]}
            for i in range(size)]
        addresses = batch("listunspent", [strangers[:500], 1, {"limit": 1000}], min(size, 150))
        unpaged = batch("listunspent", [], size)
        history = batch("getaddresshistory", [encode_address(owner("carol")), {"limit": 1000}], size)
        for name, batches in (("idle", []), ("listunspent pages", [pages]),
                              ("listunspent 1,000 owners", [owners]), ("listunspent 500 addresses", [addresses]),
                              ("listunspent unpaged", [unpaged]),
                              ("history pages", [history]), ("all at once", [pages, owners, unpaged, history]),
                              ("decode 1 MB txs", [batch("decoderawtransaction", [big_tx_hex()], 3)])):
            results.append(await phase(probes, name, regtest.port, batches))
            print(f"  {name}: longest ping {results[-1]['ping_max_ms']} ms", flush=True)
        print(f"filling the mempool with {args.mempool:,} txs ...", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, fill_mempool, regtest, args.mempool)
        scans = [batch("getaddresshistory", [encode_address(owner("dave")), {"limit": 1000}], min(size, 100)),
                 batch("listunspent", [[encode_address(owner("carol"))], 0, {"limit": 1000}], min(size, 100)),
                 batch("getrawmempool", [], min(size, 20))]
        results.append(await phase(probes, "mempool scans", regtest.port, scans))
        print(f"  mempool scans: longest ping {results[-1]['ping_max_ms']} ms", flush=True)
        probes._stop = True
        await watching
    finally:
        regtest.stop()
    devnet = Node(directory, "devnet")
    try:
        probes = Probes(devnet.port, DEVNET)
        watching = asyncio.get_running_loop().create_task(probes.run())
        while not probes.pings:
            await asyncio.sleep(0.05)
        mine = {"jsonrpc": "2.0", "id": 1, "method": "generatetoaddress",
                "params": [20, encode_address(owner("bob"))]}
        results.append(await phase(probes, "generatetoaddress devnet", devnet.port, [mine], devnet.token))
        print(f"  generatetoaddress devnet: longest ping {results[-1]['ping_max_ms']} ms", flush=True)
        probes._stop = True
        await watching
    finally:
        devnet.stop()
    return results


def table(results: list[dict], verify_us: float) -> str:
    lines = [f"{'phase':<26} {'seconds':>7} {'load':>5} {'pings':>6} {'ping max':>9} {'ping p99':>9} "
             f"{'rpc max':>8} {'rpc p99':>8} {'max/verify':>10}  goal {GOAL_MS} ms",
             "-" * 106]
    for r in results:
        verdict = "PASS" if r["ping_max_ms"] <= GOAL_MS else "OVER"
        lines.append(f"{r['phase']:<26} {r['seconds']:>7} {r['load']:>5} {r['pings']:>6} {r['ping_max_ms']:>9} "
                     f"{r['ping_p99_ms']:>9} {r['rpc_max_ms']:>8} {r['rpc_p99_ms']:>8} "
                     f"{r['ping_max_ms'] * 1000 / verify_us:>10,.0f}  {verdict}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coins", type=int, default=40_000, help="coins in the UTXO set besides carol's (40,000)")
    parser.add_argument("--mempool", type=int, default=20_000, help="txs waiting in the mempool (20,000)")
    parser.add_argument("--batch", type=int, default=1000,
                        help="calls per batch (1,000; fewer to measure a node that answers slowly)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--quiet-wait", type=float, default=0, metavar="SECONDS",
                        help="first wait up to SECONDS for the 1-minute load average to drop below 1")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.quiet_wait
    while os.getloadavg()[0] >= 1.0 and time.monotonic() < deadline:
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    verify_us = raw_verify_us()
    print(f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"one raw coincurve verify: {verify_us:.1f} us; load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_rpc_lag-") as directory:
        results = asyncio.run(measure(args, Path(directory)))
    print()
    print(table(results, verify_us))
    if args.json:
        args.json.write_text(json.dumps({"verify_us": verify_us, "phases": results}, indent=2))


if __name__ == "__main__":
    main()
