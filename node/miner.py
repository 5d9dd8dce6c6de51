"""Mining: block templates from the mempool, instant regtest blocks, and a
devnet proof-of-work search in a separate process.

A template takes mempool transactions by fee rate (parents first) within the
block size limit and pays subsidy + fees to the miner in one coinbase
output; its time is ``max(now, MTP + 1)``. On devnet the nonce search runs
in a worker process in chunks (``search``), so the event loop (peers, RPC)
stays responsive, and the work is abandoned as soon as the tip changes:
the background miner (``Miner``) and ``generatetoaddress`` (``mine``) alike.
A block whose expected work is tiny (regtest: about two hashes) is solved
in place, which is faster than a trip to another process. Both connect
their blocks on the validation thread (``gate.NodeGate``): a template of a
full mempool is a 1 MB block, hundreds of milliseconds to connect; a
template is built while the node is held, and a solved block is dropped if
the tip moved meanwhile.
"""

import asyncio
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from chain.block import Block, Header
from chain.mining import build_block, solve
from chain.params import MAX_BLOCK_SIZE
from chain.pow import block_work
from chain.tx import TxOut

from .gate import NodeGate
from .node import Node

log = logging.getLogger("toychain")
COINBASE_ROOM = 1_000
CHUNK = 100_000        # nonces per trip to the worker process: about 0.15 s of hashing
INLINE_WORK = 1_000    # expected hashes a block may need and still be solved on the loop (~1 ms)


def block_template(node: Node, owner: bytes, now: float) -> Block:
    chain = node.chain
    parent = chain.tip
    txs, fees = node.mempool.select(MAX_BLOCK_SIZE - COINBASE_ROOM)
    time = max(int(now), chain.median_time_past(parent) + 1)
    reward = chain.net.subsidy(parent.height + 1) + fees
    return build_block(parent.hash, parent.height + 1, chain.next_required_bits(parent), time,
                       txs, [TxOut(reward, owner)])


def generate(node: Node, count: int, owner: bytes) -> list[bytes]:
    """Mine ``count`` blocks here and now (instant at regtest difficulty)."""
    hashes = []
    for _ in range(count):
        template = block_template(node, owner, node.clock())
        hashes.append(_connect(node, Block(solve(template.header), template.txs)))
    return hashes


def _solve_chunk(header: Header, tries: int) -> Header | None:
    return solve(header, tries)


async def search(pool: ProcessPoolExecutor, header: Header, stale, rebuild=lambda: False) -> Header | None:
    """The solved header, searched ``CHUNK`` nonces at a time in ``pool``;
    None as soon as ``stale()`` says the work is no longer wanted, or after
    a chunk without a solution when ``rebuild()`` asks for a new template."""
    loop = asyncio.get_running_loop()
    while True:
        found = await loop.run_in_executor(pool, _solve_chunk, header, CHUNK)
        if stale():
            return None
        if found is not None or rebuild():
            return found
        header = replace(header, nonce=header.nonce + CHUNK)


async def mine(node: Node, count: int, owner: bytes, pool: ProcessPoolExecutor,
               gate: NodeGate) -> list[bytes]:
    """``generate`` without holding the loop: the nonce search runs in
    ``pool`` (a tiny one: in place on the validation thread, with the
    connect), a template is rebuilt when another block moves the tip, and
    each block connects on the validation thread."""
    hashes = []
    while len(hashes) < count:
        async with gate.held():
            tiny = block_work(node.chain.next_required_bits(node.chain.tip)) <= INLINE_WORK
        if tiny:  # template, nonce and connect in one go
            hashes += await gate.offload(lambda: generate(node, 1, owner))
            continue
        async with gate.held():
            template = block_template(node, owner, node.clock())
            tip = node.chain.tip.hash
        header = await search(pool, template.header, lambda: node.chain.tip.hash != tip)
        mined = header and await gate.offload(lambda: _connect_on(node, tip, Block(header, template.txs)))
        if mined:
            hashes.append(mined)
        # else someone else's block came first: mine on the new tip
    return hashes


def _connect(node: Node, block: Block) -> bytes:
    outcome = node.accept_block(block, "generatetoaddress")
    if outcome.status != "connected":
        raise RuntimeError(f"mined block not connected: {outcome.status} {outcome.error}")
    return block.hash


def _connect_on(node: Node, tip: bytes, block: Block) -> bytes | None:
    """Connect a block mined on ``tip``; None if the tip moved since."""
    if node.chain.tip.hash != tip:
        return None
    return _connect(node, block)


class Miner:
    """Background miner: devnet PoW in a process, or regtest automine."""

    def __init__(self, node: Node, owner: bytes, gate: NodeGate):
        self.node = node
        self.owner = owner
        self.gate = gate
        self._pool: ProcessPoolExecutor | None = None

    async def run_pow(self) -> None:
        self._pool = ProcessPoolExecutor(1)
        node = self.node
        try:
            while True:
                async with self.gate.held():
                    template = block_template(node, self.owner, node.clock())
                    tip, mempool_size = node.chain.tip.hash, len(node.mempool)
                # stale: someone else extended the chain; rebuild: new txs for a new template
                found = await search(self._pool, template.header, lambda: node.chain.tip.hash != tip,
                                     lambda: len(node.mempool) != mempool_size)
                if found is not None:  # unless another block came first while the node was not held
                    await self.gate.offload(lambda: node.chain.tip.hash == tip and node.accept_block(
                        Block(found, template.txs), "miner"))
        finally:
            self._pool.shutdown(cancel_futures=True)

    async def run_automine(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            if len(self.node.mempool):
                await self.gate.offload(lambda: generate(self.node, 1, self.owner))
