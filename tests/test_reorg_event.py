"""The ``reorg`` event (an extension of PROTOCOL.md section 8's events,
docs/protocol-notes.md): when the tip leaves its branch the node publishes
exactly one, after the block events, naming the blocks left (old tip first),
the blocks joined (fork first), the fork, and the new tip's height and chain
work; ``block_connected`` carries the block's chain work. A reorg that fails
partway and falls back onto the branch it left moved no tip: no reorg event,
only the block events of what moved and moved back. Run on a simulated node
(sim/), through the RPC's submitblock."""

from chain.address import encode_address
from chain.mining import mine_block
from chain.tx import TxOut
from sim.funding import owner
from sim.scenarios import World

from .test_network_sim import block_on, call


def bad_block_on(chain, parent):
    """A block whose coinbase claims one unit too many: found invalid only when connected."""
    height = parent.height + 1
    return mine_block(parent.hash, height, chain.next_required_bits(parent), chain.median_time_past(parent) + 1,
                      [], [TxOut(chain.net.subsidy(height) + 1, owner("mallory"))])


def branch(node, parent, length, bad_at=None):
    """``length`` blocks on ``parent`` (the one at index ``bad_at`` invalid), stored
    in the node's index as headers so that each next one has its parent."""
    blocks = []
    for i in range(length):
        block = (bad_block_on if i == bad_at else block_on)(node.chain, parent)
        node.chain.accept_header(block.header)
        parent = node.chain.index[block.hash]
        blocks.append(block)
    return blocks


def mined(node, count) -> list[str]:
    """``count`` blocks mined by the node on its tip: their hashes."""
    return call(node, "generatetoaddress", count, encode_address(owner("alice")))


def submit(node, blocks):
    """Submit ``blocks`` in order (each stored); the events they made."""
    start = len(node.published)
    for block in blocks:
        assert call(node, "submitblock", block.raw.hex()) is None
    return node.published[start:]


def hexes(blocks):
    return [b.hash.hex() for b in blocks]


def single_node():
    world = World.build(26, 1, max_outbound=0)
    (node,) = world.honest
    return node


def test_a_reorg_publishes_one_event_naming_the_blocks_left_and_joined_in_order():
    node = single_node()
    base = node.chain.height
    fork = node.chain.tip
    old = mined(node, 2)  # the active branch: fork, old[0], old[1]
    new = branch(node, fork, 3)
    events = submit(node, new)
    assert node.chain.tip.hash == new[-1].hash
    reorgs = [f for e, f in events if e == "reorg"]
    assert len(reorgs) == 1
    (reorg,) = reorgs
    assert reorg["disconnected"] == old[::-1]  # old tip first: the order they were left
    assert reorg["connected"] == hexes(new)           # fork first: the order they were joined
    assert (reorg["fork"], reorg["fork_height"]) == (fork.hash.hex(), base)
    tip = node.chain.tip
    assert (reorg["tip"], reorg["height"], reorg["chainwork"]) == (tip.hash.hex(), base + 3,
                                                                   f"{tip.chainwork:064x}")
    # the block events are still there, before it, in the order the blocks moved
    assert [e for e, _ in events if e.startswith("block") or e == "reorg"][-6:] == \
        ["block_disconnected", "block_disconnected", "block_connected", "block_connected",
         "block_connected", "reorg"]
    assert [f["hash"] for e, f in events if e == "block_disconnected"] == old[::-1]
    connected = [f for e, f in events if e == "block_connected"]
    assert [f["hash"] for f in connected][-3:] == hexes(new)
    assert connected[-1]["chainwork"] == f"{tip.chainwork:064x}"


def test_extending_the_tip_is_no_reorg():
    node = single_node()
    start = len(node.published)
    mined(node, 2)
    events = node.published[start:]
    assert [e for e, _ in events if e.startswith("block")] == ["block_connected"] * 2
    assert not [e for e, _ in events if e == "reorg"]


def test_a_reorg_that_fails_partway_names_only_where_the_tip_ends():
    node = single_node()
    fork = node.chain.tip
    (old,) = mined(node, 1)
    new = branch(node, fork, 4, bad_at=2)  # new[2] is invalid: new[1] is as far as it gets
    submit(node, new[:0:-1])  # bodies waiting for new[0]'s: it sets off the whole reorg at once
    start = len(node.published)
    assert call(node, "submitblock", new[0].raw.hex()) is None
    events = node.published[start:]
    assert node.chain.tip.hash == new[1].hash  # two blocks: more work than the one left
    (reorg,) = [f for e, f in events if e == "reorg"]
    assert (reorg["disconnected"], reorg["connected"]) == ([old], hexes(new[:2]))
    assert reorg["fork"] == fork.hash.hex()


def test_a_reorg_that_falls_back_onto_the_branch_it_left_publishes_none():
    node = single_node()
    fork = node.chain.tip
    old = mined(node, 2)
    new = branch(node, fork, 3, bad_at=1)  # new[1] is invalid: new[0] alone has less work than old
    submit(node, new[:0:-1])  # bodies waiting for new[0]'s: it sets off the whole reorg at once
    start = len(node.published)
    assert call(node, "submitblock", new[0].raw.hex()) is None
    events = node.published[start:]
    assert node.chain.tip.hash.hex() == old[-1]  # back where it was
    assert [f["hash"] for e, f in events if e == "block_disconnected"] == old[::-1] + hexes(new[:1])
    assert [f["hash"] for e, f in events if e == "block_connected"] == hexes(new[:1]) + old
    assert not [e for e, _ in events if e == "reorg"]
