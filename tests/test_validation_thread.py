"""Blocks and big txs are validated off the event loop (node/gate.py, node/server.py).

The assertions are on the mechanism, not on timings (a loaded machine
stretches every figure; scripts/bench_loop_lag.py measures the stalls): in
real servers, every block a node processes, from a peer or an RPC, runs on
the validation thread; a big tx does too (by RPC or P2P), a small one
stays on the loop;
while a block is held on the thread, the loop still answers HTTP, and a call
that reads the chain waits and then sees the block whole; a caller that
gives up does not let anyone in while the thread still runs.
"""

import asyncio
import threading

import aiohttp

from chain.block import Block
from chain.coins import Coin
from chain.mining import solve
from chain.tx import OutPoint
from node.gate import OFFLOAD_CHARS, NodeGate
from node.messages import tx_msg
from node.miner import block_template

from .helpers import make_tx, owner
from .nodes import Network, address, http_rpc, run, start_node, wait_for
from .test_network import RawPeer

LOOP = threading.main_thread().name  # asyncio.run runs the tests' loops on the main thread


def record_threads(server, obj, name: str) -> list[str]:
    """Wrap ``obj.name`` so that each call notes the name of the thread it ran on."""
    threads, original = [], getattr(obj, name)

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)
    setattr(obj, name, spy)
    return threads


def test_every_block_from_rpc_and_peer_is_processed_on_the_validation_thread(tmp_path):
    async def scenario():
        async with Network(tmp_path, 2) as net:
            a, b = net.nodes
            threads = {s: record_threads(s, s.node.chain, "process_block") for s in (a, b)}
            reply = await http_rpc(a, "generatetoaddress", 3, address("alice"), admin=True)
            assert len(reply["result"]) == 3
            await wait_for(lambda: b.node.chain.height == 3, what="b has a's blocks")
            await b.gate.offload(lambda: None)  # b's thread is done with them
            assert len(threads[a]) == 3 and len(threads[b]) == 3
            for server in (a, b):
                assert all(name.startswith("validate") for name in threads[server]), threads[server]
                assert server.gate.offloaded >= 3
    run(scenario())


def test_the_background_miner_connects_its_blocks_on_the_validation_thread(tmp_path):
    async def scenario():
        server = await start_node(tmp_path / "n", automine=0.01, miner_owner=owner("carol"))
        try:
            coins = fan_out(server, 1)
            threads = record_threads(server, server.node.chain, "process_block")
            tx = make_tx(coins, "bob", [("carol", coins[0][1].amount - 1000)])
            assert (await http_rpc(server, "sendrawtransaction", tx.raw.hex()))["result"] == tx.txid.hex()
            await wait_for(lambda: tx.txid not in server.node.mempool, what="the tx mined")
            assert threads and all(name.startswith("validate") for name in threads), threads
        finally:
            await server.stop()
    run(scenario())


def fan_out(node, count: int):
    """``count`` coins of bob's in the chain (regtest: blocks to alice, a fan-out, a block)."""
    Network.call(node, "generatetoaddress", 101, address("alice"))
    [coin] = [c for c in node.node.chain.store.coins_of(owner("alice")) if c[1].height == 1]
    each = (coin[1].amount - 1_000_000) // count
    tx = make_tx([coin], "alice", [("bob", each)] * count)
    Network.call(node, "sendrawtransaction", tx.raw.hex())
    Network.call(node, "generatetoaddress", 1, address("alice"))
    return [(OutPoint(tx.txid, i), Coin(each, owner("bob"), 0, False)) for i in range(count)]


def test_a_big_tx_is_checked_on_the_validation_thread_and_a_small_one_on_the_loop(tmp_path):
    async def scenario():
        server = await start_node(tmp_path / "n")
        try:
            coins = fan_out(server, 200)
            threads = record_threads(server, server.node.mempool, "accept")
            small = make_tx(coins[:1], "bob", [("carol", coins[0][1].amount - 1000)])
            big = make_tx(coins[1:101], "bob", [("carol", sum(c.amount for _, c in coins[1:101]) - 100_000)])
            assert len(small.raw.hex()) < OFFLOAD_CHARS <= len(big.raw.hex())
            for tx in (small, big):
                assert (await http_rpc(server, "sendrawtransaction", tx.raw.hex()))["result"] == tx.txid.hex()
            assert threads[0] == LOOP and threads[1].startswith("validate"), threads
            # the same over P2P: a small tx frame on the loop, a big one on the thread
            peer = await RawPeer.open(server, "127.0.0.1:1")
            try:
                await peer.handshake()
                small = make_tx(coins[101:102], "bob", [("carol", coins[101][1].amount - 1000)])
                big = make_tx(coins[102:200], "bob", [("carol", sum(c.amount for _, c in coins[102:200]) - 100_000)])
                for tx in (small, big):
                    await peer.send(tx_msg(tx))
                    await wait_for(lambda: tx.txid in server.node.mempool, what="the tx in the mempool")
                assert threads[2] == LOOP and threads[3].startswith("validate"), threads
            finally:
                await peer.session.close()
        finally:
            await server.stop()
    run(scenario())


def test_the_loop_answers_while_a_block_is_on_the_thread_and_readers_wait_for_it(tmp_path):
    async def scenario():
        server = await start_node(tmp_path / "n")
        try:
            Network.call(server, "generatetoaddress", 1, address("alice"))
            node = server.node
            template = block_template(node, owner("bob"), node.clock())
            block = Block(solve(template.header), template.txs)
            started, go = threading.Event(), threading.Event()
            original = node.chain.process_block

            def held(*args):
                started.set()
                assert go.wait(30), "the test never let the block go"
                return original(*args)
            node.chain.process_block = held
            submit = asyncio.ensure_future(http_rpc(server, "submitblock", block.raw.hex()))
            await wait_for(started.is_set, what="the block on the validation thread")
            async with aiohttp.ClientSession() as session:  # the loop is free: HTTP is answered
                async with session.get(f"http://{node.listen}/dashboard/config") as response:
                    assert response.status == 200
            reader = asyncio.ensure_future(http_rpc(server, "getbestblockhash"))
            await wait_for(lambda: server.gate.waiting == 1, what="the reader waiting for the node")
            assert server.gate.busy and not reader.done() and not submit.done()
            go.set()
            assert (await submit)["result"] is None
            assert (await reader)["result"] == block.hash.hex()  # the whole block, never half of it
        finally:
            await server.stop()
    run(scenario())


def test_a_cancelled_caller_leaves_the_node_to_the_thread_until_it_ends():
    async def scenario():
        gate = NodeGate()
        release, entered = threading.Event(), []
        try:
            caller = asyncio.ensure_future(gate.offload(lambda: release.wait(30)))
            await wait_for(lambda: gate.busy, what="the work on the thread")
            caller.cancel()

            async def other():
                async with gate.held():
                    entered.append(gate.busy)
            waiter = asyncio.ensure_future(other())
            await wait_for(lambda: gate.waiting == 1 and caller.done(), what="the other call waiting")
            assert caller.cancelled() and gate.busy and not entered  # the thread runs: nobody gets in
            release.set()
            await waiter
            assert entered == [False]
        finally:
            release.set()
            gate.close()
    run(scenario())


def test_the_gate_is_free_only_when_nobody_has_the_node_or_waits_for_it():
    """``free`` lets a peer link call the node without ``held``: never while the
    thread has the node, nor while a call on the loop has it, nor while another
    call still waits for its turn (it would be overtaken: the order is FIFO)."""
    async def scenario():
        gate = NodeGate()
        release, go, seen = threading.Event(), asyncio.Event(), []
        try:
            assert gate.free
            offloaded = asyncio.ensure_future(gate.offload(lambda: release.wait(30)))
            await wait_for(lambda: gate.busy, what="the work on the thread")
            assert not gate.free
            release.set()
            await offloaded
            assert gate.free

            async def first():
                async with gate.held():
                    seen.append(("first holds", gate.free))
                    await go.wait()
                seen.append(("first left, second woken but not yet in", gate.free))

            async def second():
                async with gate.held():
                    seen.append(("second holds", gate.free))
            one = asyncio.ensure_future(first())
            await wait_for(lambda: seen, what="the first call in")
            two = asyncio.ensure_future(second())
            await wait_for(lambda: gate.waiting == 1, what="the second call waiting")
            assert not gate.free
            go.set()
            await asyncio.gather(one, two)
            assert seen == [("first holds", False), ("first left, second woken but not yet in", False),
                            ("second holds", False)]
            assert gate.free
        finally:
            release.set()
            gate.close()
    run(scenario())
