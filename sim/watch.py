"""Narrated runs for a class: watch the network in simulated time.

``partition``: six honest nodes; the network splits in two, each side mines
its own blocks and takes its own payment, then the link comes back and
every node moves to the branch with the most work. One line per simulated
second in which something changed: each node's height and the first hex
digits of its tip, so the class sees the two branches and the reorg.
"""

from .funding import owner
from .scenarios import World


def _cells(world: World) -> str:
    return " ".join(f"{n.chain.height:>3} {n.chain.tip.hash.hex()[:6]}" for n in world.honest)


def partition(seed: int) -> None:
    world = World.build(seed, 6)
    sim, nodes = world.sim, world.honest
    left, right = nodes[0::2], nodes[1::2]
    print("Six nodes; each column is a node: its height and the start of its tip's hash.")
    print("   time  " + " ".join(f"{n.name:>10}" for n in nodes))
    last = [None]

    def show(note: str = "") -> None:
        cells = _cells(world)
        if note or cells != last[0]:
            print(f"{sim.now - world.start:7.1f} s  {cells}  {note}")
            last[0] = cells

    sim.every(1.0, show)
    sim.run_for(3)
    show("all connected, all on the same tip")
    sim.partition([left, right])
    show("the network splits: " + " ".join(n.name for n in left) + " | "
         + " ".join(n.name for n in right))
    tx = world.payment(to="bob")
    left[0].submit(tx)
    sim.run_for(1)
    show(f"{left[0].name} takes a payment to bob; only its side hears of it")
    for step, (node, count) in enumerate(((left[0], 1), (right[0], 1), (right[1], 1))):
        sim.run_for(2)
        node.mine(owner("carol"), count)
        show(f"{node.name} mines a block on its side")
    sim.run_for(3)
    sim.heal()
    healed = sim.now
    show("the link is back: each side dials the other again")
    sim.run_until(healed + 60, lambda: len({n.chain.tip.hash for n in nodes}) == 1)
    show(f"every node on the branch with the most work, {sim.now - healed:.1f} s after the heal")
    sim.run_for(1)
    held = [n.name for n in nodes if tx.txid in n.mempool]
    print(f"\nThe left side's block was undone (a reorg); bob's payment went back to the mempools "
          f"and was announced again: now waiting in {', '.join(held)} for the next block.")


WATCHES = {"partition": partition}
