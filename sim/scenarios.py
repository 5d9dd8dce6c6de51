"""Scenarios: a network, a script of what happens, and the invariants checked.

``World`` builds honest nodes (each dialling up to two earlier ones, as
``--peer`` would) and places adversaries among them. ``standard(seed)`` is
the run the suite repeats over many seeds:

1. the nodes connect; adversaries dial some honest nodes and some honest
   nodes dial them;
2. for 20 simulated seconds, txs are sent to random honest nodes (one coin
   spent twice at two nodes at once, one tx spending another's output) and
   blocks are mined at random honest nodes;
3. at 10 s the honest nodes split in two for 10 to 20 s; both sides keep
   mining and sending txs; a private miner (when present) mines a branch
   spending the coin of a public tx elsewhere (a double spend), released
   when the partition heals;
4. after the heal, while the honest nodes are not all on one tip, a block
   is mined every ``TIE_SECONDS`` on a node with the most work (breaking
   ties between equal branches); they must all be on the most-work tip
   within ``CONVERGE_SECONDS``;
5. blocks are mined until every mempool is empty (each time at the node
   holding the most txs; a node still out of touch, say redialling its
   peers after the heal, may mine on an old tip, and its block then ties
   with another); then, as after the heal, a block every ``TIE_SECONDS`` at
   a node with the most work until they are all on one tip (within
   ``CONVERGE_SECONDS``), and the end invariants are checked.

Invariants (``invariants.py``) are checked once a simulated second on every
honest node, and at the end.
"""

import time
from dataclasses import dataclass, field

from chain.tx import OutPoint, Tx

from . import invariants
from .adversaries import PrivateMiner, random_adversary
from .funding import funds, owner, pay
from .honest import HonestNode
from .network import LATENCY, Simulation

CONVERGE_SECONDS = 180.0   # after the last heal, all honest nodes on the most-work tip by then
TIE_SECONDS = 20.0         # after the heal, a block this often until they are
TRAFFIC_SECONDS = 20.0     # txs and blocks are sent and mined over this long
PARTITION_AT = 10.0        # seconds into the traffic
PARTITION_SECONDS = (10.0, 20.0)
SETTLE_ROUNDS = 8          # blocks mined at the end to empty the mempools
FEE = 1_000
RECIPIENTS = ("bob", "carol", "dave", "erin")


@dataclass
class Report:
    seed: int
    nodes: int
    adversaries: list[str]
    frames: int = 0
    simulated: float = 0.0
    converged_after: float | None = None
    seconds: float = 0.0
    digest: str = ""
    txs: int = 0
    height: int = 0

    def line(self) -> str:
        return (f"seed {self.seed}: {self.nodes} nodes ({', '.join(self.adversaries) or 'no adversaries'}), "
                f"{self.frames} frames, {self.simulated:.0f} s simulated, converged "
                f"{self.converged_after:.1f} s after the heal at height {self.height}, "
                f"{self.txs} txs, {self.seconds:.2f} s")


@dataclass
class World:
    sim: Simulation
    honest: list[HonestNode] = field(default_factory=list)
    adversaries: list = field(default_factory=list)
    txs: dict[bytes, Tx] = field(default_factory=dict)
    coins: list = field(default_factory=list)
    check_every_action: bool = True
    start: float = 0.0  # simulated time when it was built

    @classmethod
    def build(cls, seed: int, honest: int, max_outbound: int = 2, line: bool = False,
              latency: tuple[float, float] = LATENCY, check_every_action: bool = True) -> "World":
        """``honest`` nodes, each dialling up to two random earlier ones (or, with
        ``line``, just the previous one and nothing it learns: a strict line).
        Invariants are checked after every batch of actions of every honest node,
        or with ``check_every_action=False`` once a simulated second."""
        sim = Simulation(seed, latency=latency)
        world = cls(sim, coins=list(funds()), check_every_action=check_every_action, start=sim.now)
        sim.rng.shuffle(world.coins)
        for i in range(honest):
            node = world.add_honest(f"n{i}", 0 if line else max_outbound)
            earlier = [i - 1] if line else sorted(sim.rng.sample(range(i), min(i, 2)))
            for j in earlier[:i]:
                world.connect(node, world.honest[j])
        return world

    def add_honest(self, name: str, max_outbound: int = 2) -> HonestNode:
        node = HonestNode(self.sim, name, 20_000 + len(self.sim.endpoints), max_outbound)
        self.honest.append(node)
        invariants.watch(self.honest, self.check_every_action)
        return node

    @staticmethod
    def connect(node: HonestNode, other) -> None:
        """``node`` dials ``other`` as a ``--peer`` (again after every loss)."""
        node.node.add_peer(other.listen)
        node.apply(node.node.take_actions())

    def place(self, adversary, dials: int = 2, dialled_by: int = 1) -> None:
        """Connect ``adversary`` to ``dials`` honest nodes, and have ``dialled_by``
        honest nodes dial it (so it is some nodes' outbound, preferred peer)."""
        rng = self.sim.rng
        self.adversaries.append(adversary)
        for node in rng.sample(self.honest, min(dials, len(self.honest))):
            self.sim.dial(adversary, node.listen)
        for node in rng.sample(self.honest, min(dialled_by, len(self.honest))):
            self.connect(node, adversary)

    # -- what users and miners do --------------------------------------------------------------
    def coin(self) -> tuple[OutPoint, object]:
        return self.coins.pop()

    def payment(self, coin=None, to: str | None = None) -> Tx:
        tx = pay(coin or self.coin(), "alice", to or self.sim.rng.choice(RECIPIENTS), FEE)
        self.txs[tx.txid] = tx
        return tx

    def child_of(self, parent: Tx) -> Tx:
        """A tx spending ``parent``'s only output (signed by its recipient)."""
        for name in RECIPIENTS:
            if parent.outputs[0].owner == owner(name):
                tx = pay((OutPoint(parent.txid, 0), parent.outputs[0]), name, "alice", FEE)
                self.txs[tx.txid] = tx
                return tx
        raise ValueError("the parent does not pay one of RECIPIENTS")

    def mine_at(self, node: HonestNode) -> None:
        node.mine(owner(self.sim.rng.choice(RECIPIENTS)))

    def settle(self, within: float = 10.0) -> None:
        """Mine until every honest mempool is empty and every node agrees.
        Each block is mined at the node holding the most txs, whatever its tip:
        one that has not heard of the last block yet (still redialling its
        peers after the partition, say) mines a rival of equal work, and each
        node keeps the one it saw first. So it ends as ``converge_after_heal``
        does (``break_ties``), then lets the txs a reorg put back spread."""
        for _ in range(SETTLE_ROUNDS):
            self.sim.run_for(within, lambda: invariants.converged(self.honest)
                             and self._pools_agree())
            busiest = max(self.honest, key=lambda n: len(n.mempool))
            if not len(busiest.mempool):
                break
            self.mine_at(busiest)
        self.break_ties(since=self.sim.now)
        self.sim.run_for(within, self._pools_agree)

    def _pools_agree(self) -> bool:
        return len({frozenset(n.mempool.entries) for n in self.honest}) == 1

    def converge_after_heal(self) -> float:
        """Heal, then ``break_ties`` (a released private branch may tie too).
        Returns the seconds from the heal until every honest node is on one tip."""
        healed = self.sim.now
        self.sim.heal()
        self.break_ties(since=healed)
        return self.sim.now - healed

    def break_ties(self, since: float) -> None:
        """Until every honest node is on one tip, mine a block every ``TIE_SECONDS``
        on a node with the most work (two branches of equal work wait for a
        block, as in Bitcoin, where each node keeps the tip it saw first).
        Raises ``InvariantBroken`` if they are not all on one tip with the most
        work ``CONVERGE_SECONDS`` after ``since``."""
        while not self.sim.run_for(TIE_SECONDS, lambda: invariants.converged(self.honest)):
            if self.sim.now - since > CONVERGE_SECONDS:
                invariants.check_converged(self.honest)  # raises with the tips
            self.mine_at(max(self.honest, key=lambda n: n.chain.tip.chainwork))


def standard(seed: int, nodes: int = 20, adversary_share: float = 0.2) -> Report:
    started = time.perf_counter()
    count = round(nodes * adversary_share)
    world = World.build(seed, nodes - count, max_outbound=1, check_every_action=False)
    sim, rng = world.sim, world.sim.rng
    kinds = []
    for k in range(count):
        if k == 0 and rng.random() < 0.3:
            miner = PrivateMiner(sim, f"a{k}", 30_000 + k)
            sim.partition([[miner]])
            for node in rng.sample(world.honest, 2):
                world.connect(miner, node)  # dialled again and again until the heal
            miner.mine_privately(1)
            kinds.append("private-miner")
            world.adversaries.append(miner)
            continue
        adversary = random_adversary(sim, f"a{k}", 30_000 + k, [n.listen for n in world.honest], rng)
        world.place(adversary, dials=rng.randrange(1, 4), dialled_by=rng.randrange(0, 2))
        kinds.append(type(adversary).__name__)
    sim.run_for(5.0)

    # Traffic: txs and blocks at random times and places.
    for _ in range(6):
        sim.at(sim.now + rng.uniform(0, TRAFFIC_SECONDS), _send_one, world)
    for _ in range(3):
        sim.at(sim.now + rng.uniform(0, TRAFFIC_SECONDS), lambda: world.mine_at(rng.choice(world.honest)))
    coin = world.coin()
    first, second = world.payment(coin), world.payment(coin)
    sim.at(sim.now + rng.uniform(0, 5), _double_spend, world, first, second)
    parent_coin = world.coin()
    parent = world.payment(parent_coin)
    sim.at(sim.now + rng.uniform(0, 5), _send_pair, world, parent, world.child_of(parent))

    # A partition of the honest nodes (the private miner stays apart until the heal).
    sim.run_for(PARTITION_AT)
    shuffled = list(world.honest)
    rng.shuffle(shuffled)
    cut = rng.randrange(1, len(shuffled))
    private = [a for a in world.adversaries if isinstance(a, PrivateMiner)]
    groups = [shuffled[:cut], shuffled[cut:]] + ([private] if private else [])
    sim.partition(groups)
    for miner in private:  # its branch spends the coin of the public parent tx elsewhere
        double = world.payment(parent_coin, to="mallory")
        sim.after(rng.uniform(0, 5), miner.mine_privately, rng.randrange(2, 5), double)
    sim.run_for(rng.uniform(*PARTITION_SECONDS))

    converged_after = world.converge_after_heal()
    world.settle()
    invariants.check_end(world.honest, world.txs)
    return Report(seed, nodes, kinds, sim.frames, sim.now - world.start, converged_after, time.perf_counter() - started, sim.digest(),
                  len({t for n in world.honest for t in n.accepted}), world.honest[0].chain.height)


def _send_one(world: World) -> None:
    node = world.sim.rng.choice(world.honest)
    node.submit(world.payment())


def _double_spend(world: World, first: Tx, second: Tx) -> None:
    a, b = world.sim.rng.sample(world.honest, 2)
    a.submit(first)
    b.submit(second)


def _send_pair(world: World, parent: Tx, child: Tx) -> None:
    node = world.sim.rng.choice(world.honest)
    node.submit(parent)
    node.submit(child)
