"""Honest nodes in the simulator: the real ``Node``, chain state and mempool.

Each ``HonestNode`` is exactly what ``toychain node`` runs, minus the
sockets: a ``ChainState`` on an in-memory SQLite copy of a funded regtest
chain (``funding.py``), a ``Mempool`` and a ``Node``, all reading the
simulation's clock. It plays the shell's part: frames from the network go
to ``Node.frame``, and the node's actions are carried out on the simulated
network (``Send`` on the connection, ``Close``, ``Dial``; announcements
when the node asks, ``flush_at``, as the real shell does); published events
are kept, for the invariants and tests, in ``accepted`` (txid -> first
acceptance time), ``events`` (a count per kind) and ``published``. ``Node.timer`` runs every
``TIMER_SECONDS`` of simulated time, as in ``server.py``.
"""

import random
import re
from collections import Counter

from chain.sigcheck import SerialVerifier
from chain.chainstate import ChainState
from chain.errors import RuleError
from chain.params import REGTEST
from chain.sigcache import SignatureCache
from node.actions import Close, Dial, Publish, Send, Stop
from node.mempool import Mempool
from node.miner import generate
from node.node import TIMER_SECONDS, Node

from .funding import chain_copy
from .network import Endpoint, Side, Simulation


class HonestNode(Endpoint):
    honest = True

    def __init__(self, sim: Simulation, name: str, port: int, max_outbound: int = 2):
        super().__init__(sim, name, f"127.0.0.1:{port}")
        clock = lambda: sim.now  # noqa: E731 - every part reads the simulated clock
        sigcache = SignatureCache()  # shared by the mempool and the block path, as in server.py
        self.chain = ChainState(REGTEST, chain_copy(), clock=clock,
                                verifier=SerialVerifier(cache=sigcache))
        self.mempool = Mempool(self.chain, clock=clock, sigcache=sigcache)
        self.node = Node(self.chain, self.mempool, listen=self.listen, clock=clock,
                         rng=random.Random(sim.rng.getrandbits(64)), max_outbound=max_outbound)
        self.side_of: dict[int, Side] = {}   # node peer id -> connection side
        self.peer_of: dict[Side, int] = {}
        self.accepted: dict[bytes, float] = {}
        self.events: Counter = Counter()
        self.published: list[tuple[str, dict]] = []  # every event, in order (runs are short)
        self.received: Counter = Counter()  # frames read, by (sender name, message type)
        self.sent_types: Counter = Counter()  # frames this node wrote, by message type
        self.closes: Counter = Counter()      # connections this node closed, by reason
        self.dials = 0                        # outbound connections it tried
        self.banned_honest: list[tuple[str, str]] = []  # (peer, reason): must stay empty
        self.after_apply = None  # called with this node after each batch of actions (invariants)
        self.after_timer = None  # called with this node after each of its timer ticks (invariants)
        self.node.flush_at = lambda when: sim.at(when, self._flush)  # announcements, batched as in server.py
        self.inv_flushes: list[float] = []  # when each batch of announcements went out
        sim.every(TIMER_SECONDS, self._tick, first=sim.now + sim.rng.uniform(0, TIMER_SECONDS))

    # -- the shell's part ----------------------------------------------------------------------
    def _tick(self) -> None:
        self.apply(self.node.timer())
        if self.after_timer is not None:
            self.after_timer(self)

    def _flush(self) -> None:
        self.inv_flushes.append(self.sim.now)
        self.apply(self.node.flush())

    def apply(self, actions) -> None:
        for action in actions:
            match action:
                case Send(peer, text):
                    self.sent_types[_type_of(text)] += 1
                    self.sim.send(self.side_of[peer], text)
                case Close(peer, reason):
                    side = self.side_of.pop(peer)
                    del self.peer_of[side]
                    self.closes[reason] += 1
                    if reason.startswith("banned") and side.remote.honest:
                        self.banned_honest.append((side.remote.name, reason))
                    self.sim.close(side, reason)
                case Dial(addr):
                    self.dials += 1
                    self.sim.dial(self, addr)
                case Publish(event, fields):
                    self.events[event] += 1
                    self.published.append((event, fields))
                    if event == "tx_accepted":
                        self.accepted.setdefault(bytes.fromhex(fields["txid"]), self.sim.now)
                case Stop():
                    pass
        self.sim.pump_all(self)
        if self.after_apply is not None:
            self.after_apply(self)

    def opened(self, side: Side) -> bool:
        if side.inbound:
            peer, actions = self.node.inbound_opened(side.remote_addr)
        else:
            peer, actions = self.node.outbound_opened(side.remote_addr)
        if peer is None:  # refused (inbound limit), or a probe that has its answer
            self.apply(actions)
            return False
        self.side_of[peer], self.peer_of[side] = side, peer
        self.apply(actions)
        return True

    def dial_failed(self, addr: str) -> None:
        self.apply(self.node.outbound_failed(addr))

    def frame(self, side: Side, text: str) -> None:
        self.received[side.remote.name, _type_of(text)] += 1
        self.apply(self.node.frame(self.peer_of[side], text))

    def of(self, event: str) -> list[dict]:
        """The fields of every ``event`` this node published, oldest first."""
        return [fields for name, fields in self.published if name == event]

    def sent(self, side: Side, nbytes: int) -> None:
        peer = self.peer_of.get(side)
        if peer is not None:
            self.apply(self.node.sent(peer, nbytes))

    def reading(self, side: Side) -> bool:
        peer = self.peer_of.get(side)
        return peer is not None and self.node.reading(peer)

    def closed(self, side: Side, reason: str) -> None:
        peer = self.peer_of.pop(side, None)
        if peer is not None:
            del self.side_of[peer]
            self.apply(self.node.closed(peer, reason))

    # -- what a user or miner does at this node --------------------------------------------------
    def mine(self, owner: bytes, count: int = 1) -> list[bytes]:
        hashes = generate(self.node, count, owner)
        self.apply(self.node.take_actions())
        return hashes

    def submit(self, tx) -> bool:
        """``sendrawtransaction``: True if the mempool took it."""
        try:
            self.node.accept_tx(tx, "rpc")
            accepted = True
        except RuleError:
            accepted = False  # refused: recorded by the node like any RPC refusal
        self.apply(self.node.take_actions())
        return accepted


def _type_of(text: str) -> str:
    """The ``type`` of a frame, for counting ("?" if it has none it can show)."""
    found = _TYPE.match(text)
    return found.group(1) if found else "?"


_TYPE = re.compile(r'\{\s*"type"\s*:\s*"([a-z]{1,20})"')
