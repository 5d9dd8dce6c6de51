#!/usr/bin/env python3
"""Event-loop stall benchmark: how long validating a big block or a 1 MB tx holds a node's loop.

While a node's event loop is held, every peer, ping and RPC client waits. The
goal (issue 12, item 2) is that it never stalls more than 50 ms while a
2,000-tx block connects or a 1 MB tx is checked.

What it measures
----------------
A regtest ``toychain node`` process (``python -m node``) gets, over RPC,
101 blocks to alice and three fan-out txs to bob (4,000, 7,000 and 7,000
outputs), mined in one block. Then, one phase at a time:

p2p block 2,000 txs     a peer (WebSocket ``/p2p``, after the handshake) sends a block of
                        2,000 one-input txs bob -> carol, built and solved here; the phase
                        ends when ``getbestblockhash`` names it
submitblock 2,000 txs   another such block by ``submitblock``
sendrawtransaction 1 MB a tx of 7,000 inputs (about 930 KB) by ``sendrawtransaction``
p2p tx 1 MB             another such tx in a ``tx`` frame from the peer; the phase ends when
                        ``getmempoolinfo`` counts it

Each big item is sent from a child process, connected and ready before the
phase starts (encoding and sending a megabyte would hold this process, and
the probes' figures with it).
Meanwhile three probes in this process, each every 10 ms, time:

* ``loop``: ``GET /dashboard/config``, which the node answers from its event
  loop without touching the chain or the mempool, so its longest round trip
  in a phase is the longest the loop was held (plus a fraction of a
  millisecond): the stall, the figure with the 50 ms goal (PASS/OVER);
* ``ping``: a P2P ``ping`` (``bench_rpc_lag.py``'s probe), and ``rpc``: an RPC
  ``getbestblockhash``. Both need the node itself, which a validation holds
  (``node/gate.py``: no call sees the chain half-updated), so they show how
  long a peer's message or a client's read waits: about the validation's
  duration, as in Bitcoin Core, whose one message-handler thread also
  handles a ping only after the block.

Each row gives the phase's duration (the validation, per tx and in raw
verifies per tx), the longest loop probe (also in raw verifies), and the
longest and 99th-percentile ping and RPC, and what the node's own loop-lag
monitor saw (``/metrics``, read before and after the phase): the bucket
bound of ``toychain_loop_lag_seconds`` the longest lag of the phase fell in
(``node lag <=``). Its largest lag since start (``toychain_loop_lag_max_seconds``,
funding included) and its longest garbage collection
(``toychain_gc_pause_max_seconds``: a collection holds every thread) are
read at the end. A node without ``/metrics``: n/a.

The machine's speed is the time of one raw libsecp256k1 verify (coincurve)
in the same run; the longest stall and the time per validated tx are also
given in those units.

How to run
----------
From the repository root::

    .venv/bin/python scripts/bench_loop_lag.py
    .venv/bin/python scripts/bench_loop_lag.py --json /tmp/lag.json

Everything listens on 127.0.0.1 with ports the OS picks; the node process
gets SIGTERM at the end (and from the kernel if this process dies); its data
directory is a temporary directory removed at the end.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rpc_lag import HOST, PROBE_SECONDS, Node, Probes, _p99, raw_verify_us  # noqa: E402

import aiohttp  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from chain.address import encode_address  # noqa: E402
from chain.block import Block  # noqa: E402
from chain.coins import Coin  # noqa: E402
from chain.mining import build_block, solve  # noqa: E402
from chain.params import REGTEST  # noqa: E402
from chain.tx import OutPoint, Tx, TxOut  # noqa: E402
from tests.helpers import make_tx, owner  # noqa: E402

GOAL_MS = 50
BLOCK_TXS = 2000
BIG_INPUTS = 7000
FEE = 2_000_000
PAY_FEE = 300  # per one-input tx in the blocks


class LoopProbes(Probes):
    """``Probes`` plus ``GET /dashboard/config``, which needs only the event loop."""

    def __init__(self, port: int, network):
        super().__init__(port, network)
        self.loop: list[float] = []

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"http://{HOST}:{self.port}/p2p", max_msg_size=64 * 1024 * 1024)
            await self._handshake(ws)
            await asyncio.gather(self._ping(ws), self._call(session), self._loop(session))
            await ws.close()

    async def _loop(self, session) -> None:
        while not self._stop:
            started = time.perf_counter()
            async with session.get(f"http://{HOST}:{self.port}/dashboard/config") as response:
                await response.read()
            self.loop.append(time.perf_counter() - started)
            await asyncio.sleep(PROBE_SECONDS)

    def take(self) -> tuple[list[float], list[float], list[float]]:
        loop, self.loop = self.loop, []
        return (loop, *super().take())


class Feeder(Probes):
    """A second P2P peer that sends one big frame, in a process of its own."""

    async def feed(self, message: dict, ready, go) -> None:
        """Connect, set ``ready``; on ``go`` send ``message``, then a ping: its
        pong says the node has handled the frame."""
        text = json.dumps(message)
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"http://{HOST}:{self.port}/p2p", max_msg_size=64 * 1024 * 1024)
            await self._handshake(ws)
            ready.set()
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
            await ws.send_str(text)
            nonce = random.getrandbits(63)
            await ws.send_json({"type": "ping", "nonce": nonce})
            while (data := await ws.receive_json())["type"] != "pong" or data["nonce"] != nonce:
                if data["type"] == "ping":
                    await ws.send_json({"type": "pong", "nonce": data["nonce"]})
            await ws.close()


def _deliver(port: int, how: str, payload: str, ready, go) -> None:
    """In a child process, so that encoding and sending a megabyte does not hold
    the probes' process: a ``block`` or ``tx`` frame from a peer, or an RPC call."""
    if how in ("block", "tx"):
        asyncio.run(Feeder(port, REGTEST).feed({"type": how, how: payload}, ready, go))
        return
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": how, "params": [payload]}).encode()
    request = urllib.request.Request(f"http://{HOST}:{port}/rpc", data=body,
                                     headers={"Content-Type": "application/json"})
    ready.set()
    go.wait()
    with urllib.request.urlopen(request, timeout=600) as response:
        reply = json.loads(response.read())
    if "error" in reply or (how == "submitblock" and reply["result"] is not None):
        raise SystemExit(f"{how}: {reply}")


class Delivery:
    """A child process ready to send one item (``_deliver``); awaiting it sends and waits."""

    def __init__(self, port: int, how: str, payload: str):
        context = multiprocessing.get_context("spawn")
        self.how, self.ready, self.go = how, context.Event(), context.Event()
        self.child = context.Process(target=_deliver, args=(port, how, payload, self.ready, self.go))
        self.child.start()

    async def prepared(self) -> None:
        while not self.ready.is_set():
            if not self.child.is_alive():
                raise SystemExit(f"the {self.how} process died (exit {self.child.exitcode})")
            await asyncio.sleep(0.01)

    async def __call__(self) -> None:
        self.go.set()
        while self.child.is_alive():
            await asyncio.sleep(0.005)
        if self.child.exitcode:
            raise SystemExit(f"delivering by {self.how} failed (exit {self.child.exitcode})")


def fund(node: Node) -> dict[str, tuple[Tx, int]]:
    """Three fan-outs to bob, mined: name -> (tx, amount of each output)."""
    node.call("generatetoaddress", 101, encode_address(owner("alice")), admin=True)
    rows = node.call("listunspent", [encode_address(owner("alice"))], 1)[:3]
    fan_outs = {}
    for name, count, row in zip(("blocks", "rpc tx", "p2p tx"), (2 * BLOCK_TXS, BIG_INPUTS, BIG_INPUTS), rows):
        coin = (OutPoint(bytes.fromhex(row["txid"]), row["index"]), Coin(row["amount"], owner("alice"), 0, True))
        each = (row["amount"] - FEE) // count
        tx = make_tx([coin], "alice", [("bob", each)] * count)
        node.call("sendrawtransaction", tx.raw.hex())
        fan_outs[name] = (tx, each)
    node.call("generatetoaddress", 1, encode_address(owner("alice")), admin=True)
    return fan_outs


def bobs_coins(fan_out: tuple[Tx, int], first: int, count: int) -> list[tuple[OutPoint, Coin]]:
    tx, each = fan_out
    return [(OutPoint(tx.txid, i), Coin(each, owner("bob"), 0, False)) for i in range(first, first + count)]


def big_block(node: Node, coins: list[tuple[OutPoint, Coin]]) -> Block:
    """A solved block on the node's tip: one one-input tx bob -> carol per coin."""
    txs = [make_tx([coin], "bob", [("carol", coin[1].amount - PAY_FEE)]) for coin in coins]
    info = node.call("getblockchaininfo")
    height = info["height"] + 1
    template = build_block(bytes.fromhex(info["best_block_hash"]), height, int(info["pow_limit_bits"], 16),
                           max(int(time.time()), info["mediantime"] + 1), txs,
                           [TxOut(REGTEST.subsidy(height) + PAY_FEE * len(txs), owner("alice"))])
    return Block(solve(template.header), template.txs)


def big_tx(coins: list[tuple[OutPoint, Coin]]) -> Tx:
    """A tx of len(coins) inputs (7,000: about 930 KB) to carol, paying 1 unit per byte and more."""
    total = sum(coin.amount for _, coin in coins)
    return make_tx(coins, "bob", [("carol", total - 1_100_000)])


async def until(condition, timeout: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while not await loop.run_in_executor(None, condition):
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the node")
        await asyncio.sleep(0.005)


async def phase(node: Node, probes: LoopProbes, name: str, txs: int, deliver, done) -> dict:
    """Run ``deliver`` (a coroutine function), wait for ``done()``; the probes' figures."""
    loop = asyncio.get_running_loop()  # a blocking call here would delay the probes' replies
    before = await loop.run_in_executor(None, lag_buckets, node)
    probes.take()
    started = time.perf_counter()
    await deliver()
    await until(done)
    seconds = time.perf_counter() - started
    await asyncio.sleep(0.1)  # a stall at the very end shows in the next ping
    stalls, pings, calls = probes.take()
    after = await loop.run_in_executor(None, lag_buckets, node)
    steady = [bound for bound, count in (after or {}).items() if count == before[bound]]  # none went over
    return {"node_lag_le_ms": None if after is None else round(min(steady, default=float("inf")) * 1000, 1),
            "phase": name, "seconds": round(seconds, 3), "txs": txs, "load": round(os.getloadavg()[0], 2),
            "probes": len(stalls), "loop_max_ms": round(max(stalls) * 1000, 1),
            "loop_p99_ms": round(_p99(stalls) * 1000, 1), "ping_max_ms": round(max(pings) * 1000, 1),
            "ping_p99_ms": round(_p99(pings) * 1000, 1), "rpc_max_ms": round(max(calls) * 1000, 1),
            "rpc_p99_ms": round(_p99(calls) * 1000, 1)}


def scrape(node: Node) -> dict[str, list] | None:
    """/metrics as {family name: samples}; None if the node has no /metrics."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{node.port}/metrics", timeout=30) as response:
            text = response.read().decode()
    except urllib.error.HTTPError:
        return None
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def lag_buckets(node: Node) -> dict[float, float] | None:
    """Wake-ups of the node's loop-lag monitor with a lag above each bucket bound, by bound."""
    families = scrape(node)
    if families is None:
        return None
    buckets = {float(s.labels["le"]): s.value for s in families["toychain_loop_lag_seconds"]
               if s.name.endswith("_bucket")}
    total = buckets[float("inf")]
    return {bound: total - count for bound, count in buckets.items() if bound != float("inf")}


def node_longest_ms(node: Node) -> tuple[float, float] | None:
    """The node's longest loop lag and garbage collection since start (/metrics), in ms."""
    families = scrape(node)
    if families is None:
        return None
    return (round(families["toychain_loop_lag_max_seconds"][0].value * 1000, 1),
            round(max(s.value for s in families["toychain_gc_pause_max_seconds"]) * 1000, 1))


async def measure(directory: Path) -> tuple[list[dict], float | None]:
    node = Node(directory, "regtest")
    try:
        print("funding ...", flush=True)
        fan_outs = fund(node)
        print("building two blocks of 2,000 txs and two 1 MB txs ...", flush=True)
        p2p_block = big_block(node, bobs_coins(fan_outs["blocks"], 0, BLOCK_TXS))
        rpc_tx = big_tx(bobs_coins(fan_outs["rpc tx"], 0, BIG_INPUTS))
        p2p_tx = big_tx(bobs_coins(fan_outs["p2p tx"], 0, BIG_INPUTS))
        print(f"  blocks of {p2p_block.size:,} bytes, txs of {rpc_tx.size:,} bytes", flush=True)
        probes = LoopProbes(node.port, REGTEST)
        watching = asyncio.get_running_loop().create_task(probes.run())
        while not probes.pings:
            await asyncio.sleep(0.05)
        results = []
        rpc_block = None
        phases = (("p2p block 2,000 txs", BLOCK_TXS, "block", lambda: p2p_block,
                   lambda: node.call("getbestblockhash") == p2p_block.hash.hex()),
                  ("submitblock 2,000 txs", BLOCK_TXS, "submitblock", lambda: rpc_block,
                   lambda: node.call("getbestblockhash") == rpc_block.hash.hex()),
                  ("sendrawtransaction 1 MB", 1, "sendrawtransaction", lambda: rpc_tx,
                   lambda: rpc_tx.txid.hex() in node.call("getrawmempool")),
                  ("p2p tx 1 MB", 1, "tx", lambda: p2p_tx, lambda: node.call("getmempoolinfo")["size"] == 2))
        for name, txs, how, item, done in phases:
            if how == "submitblock":  # on the tip the first one made
                rpc_block = big_block(node, bobs_coins(fan_outs["blocks"], BLOCK_TXS, BLOCK_TXS))
            delivery = Delivery(node.port, how, item().raw.hex())
            await delivery.prepared()
            results.append(await phase(node, probes, name, txs, delivery, done))
            print(f"  {name}: longest loop probe {results[-1]['loop_max_ms']} ms", flush=True)
        probes._stop = True
        await watching
        return results, node_longest_ms(node)
    finally:
        node.stop()


def table(results: list[dict], verify_us: float) -> str:
    lines = [f"{'phase':<24} {'seconds':>7} {'us/tx':>9} {'/verify':>8} {'load':>5} {'probes':>6} "
             f"{'loop max':>8} {'/verify':>7} {'loop p99':>8} {'ping max':>8} {'ping p99':>8} {'rpc max':>7} "
             f"{'rpc p99':>7} {'node lag <=':>11}  goal {GOAL_MS} ms", "-" * 149]
    for r in results:
        per_tx = r["seconds"] * 1e6 / r["txs"]
        verdict = "PASS" if r["loop_max_ms"] <= GOAL_MS else "OVER"
        lines.append(f"{r['phase']:<24} {r['seconds']:>7} {per_tx:>9,.0f} {per_tx / verify_us:>8,.1f} "
                     f"{r['load']:>5} {r['probes']:>6} {r['loop_max_ms']:>8} "
                     f"{r['loop_max_ms'] * 1000 / verify_us:>7,.0f} {r['loop_p99_ms']:>8} {r['ping_max_ms']:>8} "
                     f"{r['ping_p99_ms']:>8} {r['rpc_max_ms']:>7} {r['rpc_p99_ms']:>7} "
                     f"{'n/a' if r['node_lag_le_ms'] is None else r['node_lag_le_ms']:>11}  {verdict}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    random.seed(1)
    verify_us = raw_verify_us()
    print(f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"one raw coincurve verify: {verify_us:.1f} us; load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_loop_lag-") as directory:
        results, longest = asyncio.run(measure(Path(directory)))
    print()
    print(table(results, verify_us))
    if longest is None:
        print("\nthe node's own monitor: n/a (no /metrics)")
    else:
        print(f"\nthe node's own monitor: longest loop lag since start {longest[0]} ms; "
              f"longest garbage collection {longest[1]} ms")
    if args.json:
        args.json.write_text(json.dumps({"verify_us": verify_us, "phases": results,
                                         "node_max_lag_ms": longest and longest[0],
                                         "node_max_gc_ms": longest and longest[1]}, indent=2))


if __name__ == "__main__":
    main()
