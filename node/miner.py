"""Mining: block templates from the mempool, instant regtest blocks, and a
devnet proof-of-work search in a separate process.

A template takes mempool transactions by fee rate (parents first) within the
block size limit and pays subsidy + fees to the miner in one coinbase
output; its time is ``max(now, MTP + 1)``. On devnet the nonce search runs
in a worker process in chunks, so the event loop (peers, RPC) stays
responsive, and the work is abandoned as soon as the tip changes.
"""

import asyncio
import logging
from concurrent.futures import ProcessPoolExecutor

from chain.block import Block, Header
from chain.mining import build_block, solve
from chain.params import MAX_BLOCK_SIZE
from chain.tx import TxOut

from .node import Node

log = logging.getLogger("toychain")
COINBASE_ROOM = 1_000
CHUNK = 100_000


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
        block = Block(solve(template.header), template.txs)
        outcome = node.accept_block(block, "generatetoaddress")
        if outcome.status != "connected":
            raise RuntimeError(f"mined block not connected: {outcome.status} {outcome.error}")
        hashes.append(block.hash)
    return hashes


def _solve_chunk(header: Header, tries: int) -> Header | None:
    return solve(header, tries)


class Miner:
    """Background miner: devnet PoW in a process, or regtest automine."""

    def __init__(self, node: Node, owner: bytes):
        self.node = node
        self.owner = owner
        self._pool: ProcessPoolExecutor | None = None

    async def run_pow(self) -> None:
        loop = asyncio.get_running_loop()
        self._pool = ProcessPoolExecutor(1)
        try:
            while True:
                template = block_template(self.node, self.owner, self.node.clock())
                tip, mempool_size = self.node.chain.tip.hash, len(self.node.mempool)
                header = template.header
                while True:
                    found = await loop.run_in_executor(self._pool, _solve_chunk, header, CHUNK)
                    if self.node.chain.tip.hash != tip:
                        break  # stale: someone else extended the chain
                    if found is not None:
                        self.node.accept_block(Block(found, template.txs), "miner")
                        break
                    header = Header(header.version, header.prev_hash, header.merkle_root,
                                    header.time, header.bits, header.nonce + CHUNK)
                    if len(self.node.mempool) != mempool_size:
                        break  # new transactions: rebuild the template
        finally:
            self._pool.shutdown(cancel_futures=True)

    async def run_automine(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            if len(self.node.mempool):
                generate(self.node, 1, self.owner)
