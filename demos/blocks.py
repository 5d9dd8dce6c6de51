"""Mining a block by hand, as a (dishonest) miner does, from what any node
tells over RPC: the best block, its header, and the rules of the network.

The next block must name the tip as its parent, carry the required bits
(the tip's bits, except at a retarget height where ``chain.block_rules.
required_bits`` computes them from the tip and the block ``retarget_interval``
back), a time after the median time past of the tip, and enough proof of
work. ``forge`` builds such a block around whatever transactions and
coinbase the miner chooses, and solves it in chunks of nonces, starting over
if the network's tip moves meanwhile: a block on a stale tip has less work
than the best chain, so a node stores it as a side branch without judging
its coins. (A block refused by the context-free checks, like the duplicate
input, is judged whatever its parent.) On the demo's own devnet a block takes
about 0.05 s; on a running devnet it races the network's miners.
"""

import time

from chain.block import Block, Header
from chain.block_rules import required_bits
from chain.mining import build_block, solve
from chain.tx import Tx

from .world import MINER_SECONDS, DemoError, World

CHUNK = 200_000  # nonces per try: about 0.15 s of Python hashing
ATTEMPTS = 5     # submissions that landed on a side branch before giving up


def bits_after(world: World, parent: dict, node=None) -> int:
    """The bits a child of ``parent`` (a ``getblockheader`` result) must carry."""
    net, height = world.net, parent["height"] + 1
    start = None
    if net.retarget_interval and height % net.retarget_interval == 0:
        start_hash = world.call(node, "getblockhash", height - net.retarget_interval)
        start = world.call(node, "getblockheader", start_hash)["time"]
    return required_bits(net, height, int(parent["bits"], 16), parent["time"], start)


def next_block_fields(world: World, node=None) -> dict:
    """prev_hash, height, bits and time of a block that may follow the tip of ``node``."""
    tip = world.call(node, "getblockheader", world.tip(node))
    return {"prev_hash": bytes.fromhex(tip["hash"]), "height": tip["height"] + 1,
            "bits": bits_after(world, tip, node),
            "time": max(int(time.time()), tip["mediantime"] + 1)}


def forge(world: World, make_coinbase, txs: list[Tx], node=None, follow_tip: bool = True,
          timeout: float = MINER_SECONDS) -> Block:
    """A solved block on the current tip of ``node`` holding ``txs``, with the
    coinbase outputs ``make_coinbase(height)`` returns (a list of TxOut). With
    ``follow_tip``, start over on the new tip whenever the network moves on
    (needed when the block is to be judged against the coins); without it,
    finish the block on the tip it started from."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = next_block_fields(world, node)
        block = build_block(fields["prev_hash"], fields["height"], fields["bits"], fields["time"],
                            list(txs), make_coinbase(fields["height"]))
        header = block.header
        while time.monotonic() < deadline:
            found = solve(header, CHUNK)
            if found is not None:
                return Block(found, block.txs)
            if follow_tip and world.tip(node) != fields["prev_hash"].hex():
                break  # the network moved on: build on the new tip
            header = Header(header.version, header.prev_hash, header.merkle_root, header.time,
                            header.bits, header.nonce + CHUNK)
    raise DemoError(f"could not mine a block on the network's tip within {timeout:.0f} s "
                    f"(the network's miners kept finding blocks first)")


def submit_everywhere(world: World, build) -> tuple[Block, list]:
    """Submit the block ``build()`` returns to every node; their answers.
    If a node stored it as a side branch (the tip moved under it, so it was not
    judged), build on the new tip and try again."""
    for _ in range(ATTEMPTS):
        block = build()
        answers = [world.submit_block(node, block) for node in world.nodes]
        if not any(a.accepted and "side branch" in (a.message or "") for a in answers):
            return block, answers
    raise DemoError(f"the tip kept moving: the block was never judged in {ATTEMPTS} attempts")
