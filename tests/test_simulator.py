"""The deterministic network simulator (sim/): real nodes, simulated links.

Each test builds a small ``World`` of honest nodes, runs it in simulated
time and checks what every node ended up with. Nothing here sleeps or
polls a clock: ``run_for`` / ``run_until`` advance simulated time until a
condition holds, and the same seed gives the same run every time.
"""

import os
import subprocess
import sys
from pathlib import Path

from sim import invariants
from sim.scenarios import World

ROOT = Path(__file__).resolve().parent.parent


def small_run(seed: int) -> str:
    """Three nodes, two txs and a block: the digest of every frame, dial and close."""
    world = World.build(seed, 3)
    sim = world.sim
    sim.run_for(3)
    world.honest[0].submit(world.payment())
    world.honest[2].submit(world.payment())
    sim.run_for(2)
    world.mine_at(world.honest[1])
    sim.run_for(5)
    return sim.digest()


def test_same_seed_replays_the_same_run_and_another_seed_does_not():
    assert small_run(7) == small_run(7)
    assert small_run(7) != small_run(8)


def test_same_seed_replays_in_another_process_with_another_hash_seed():
    """A seed printed by scripts/simulate must replay in a new process, where
    Python hashes str and bytes differently (PYTHONHASHSEED)."""
    code = "from tests.test_simulator import small_run; print(small_run(7))"
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True, timeout=120)
        digests.add(out.stdout.strip())
    assert digests == {small_run(7)}


def test_tx_sent_to_one_node_reaches_all_five_mempools_of_a_line():
    """Converted from a polling test over real sockets: each node relays a tx it
    accepted to its neighbours, so it crosses a line of five, fetched once per node."""
    world = World.build(1, 5, line=True)
    sim, nodes = world.sim, world.honest
    sim.run_for(3)
    assert [len(n.node.peers) for n in nodes] == [1, 2, 2, 2, 1]
    tx = world.payment()
    assert nodes[2].submit(tx)
    started = sim.now
    assert sim.run_for(5, lambda: all(tx.txid in n.mempool for n in nodes))
    assert sim.now - started < 1.0  # four hops of inv, getdata, tx
    assert all(n.events["tx_accepted"] == 1 for n in nodes)
    assert all(n.accepted[tx.txid] >= started for n in nodes)


def test_block_mined_at_one_end_reaches_every_node_of_a_line():
    world = World.build(2, 5, line=True)
    sim, nodes = world.sim, world.honest
    sim.run_for(3)
    world.mine_at(nodes[4])
    tip = nodes[4].chain.tip.hash
    assert sim.run_for(5, lambda: invariants.converged(nodes))
    assert all(n.chain.tip.hash == tip for n in nodes)
    assert all(n.events["block_connected"] == 1 for n in nodes)
