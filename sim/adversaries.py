"""Hostile peers for the simulator, each a few lines of protocol spoken by hand.

Every adversary completes the handshake like an honest peer (so it is
served like one) and then does one thing wrong:

    Withholder      announces every tx and block it hears of, to every peer,
                    at once (to be asked first), and never delivers them
    NotFounder      the same, but answers every getdata with notfound
    Deaf            never reads what the node sends, and asks for headers
                    over and over (the answers pile up on the node's side)
    Flooder         floods one message type: inv of random hashes, addr,
                    getheaders, or a getdata repeating one block hash
    ForkHeaders     sends the headers of a longer fork it mined and never
                    the blocks, answering notfound (or nothing)
    Idle            opens many connections and never says a word
    ListenLiar      claims an honest node's listen address in its version
                    and then sends one malformed frame, to get it banned
    PrivateMiner    a real node kept apart from the rest, mining its own
                    branch (with a double spend in it) until it is released

Adversaries use ``sim.rng`` for every choice, so a seed replays them too.
"""

import json
import random

from chain.chainstate import ChainState
from chain.mining import mine_block
from chain.params import REGTEST
from chain.tx import TxOut
from node import messages as m

from .funding import chain_copy, owner
from .honest import HonestNode
from .network import Endpoint, Side, Simulation


def _json(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


class Adversary(Endpoint):
    """A peer that handshakes honestly; subclasses decide what it does next."""

    def __init__(self, sim: Simulation, name: str, port: int, claim: str | None = None):
        super().__init__(sim, name, f"127.0.0.1:{port}")
        self.claim = self.listen if claim is None else claim  # the listen it announces
        self.nonce = sim.rng.getrandbits(63)
        self.ready: list[Side] = []

    def send(self, side: Side, message: dict | str) -> None:
        self.sim.send(side, message if isinstance(message, str) else _json(message))

    def version(self) -> dict:
        genesis = REGTEST.genesis.hash.hex()
        return {"type": "version", "network": "regtest", "genesis": genesis, "protocol": 1,
                "nonce": self.nonce, "height": 0, "best": genesis, "user_agent": "/adversary/",
                "listen": self.claim}

    def opened(self, side: Side) -> bool:
        if not side.inbound:
            self.send(side, self.version())
        return True

    def frame(self, side: Side, text: str) -> None:
        try:
            msg = m.parse(text)
        except m.Misbehaviour:
            return
        if msg is None:
            return
        if msg["type"] == "version":
            if side.inbound:
                self.send(side, self.version())
                self.send(side, {"type": "verack"})
        elif msg["type"] == "verack":
            if not side.inbound:
                self.send(side, {"type": "verack"})
            if side not in self.ready:
                self.ready.append(side)
                self.on_ready(side)
        elif msg["type"] == "ping":
            self.send(side, {"type": "pong", "nonce": msg["nonce"]})
        elif side in self.ready:
            self.on_message(side, msg)

    def closed(self, side: Side, reason: str) -> None:
        if side in self.ready:
            self.ready.remove(side)

    def on_ready(self, side: Side) -> None:
        pass

    def on_message(self, side: Side, msg: dict) -> None:
        pass


class Scripted(Adversary):
    """Not hostile: sends ``script`` [(delay, message)] after the handshake and
    serves ``txs`` to getdata, like a peer a test controls frame by frame."""

    def __init__(self, sim: Simulation, name: str, port: int, script, txs=()):
        super().__init__(sim, name, port)
        self.script = list(script)
        self.txs = {tx.txid: tx for tx in txs}
        self.received: dict[str, list[int]] = {}  # message type -> sizes of the inv-like lists got

    def on_ready(self, side: Side) -> None:
        for delay, message in self.script:
            self.sim.after(delay, self.send, side, message)

    def on_message(self, side: Side, msg: dict) -> None:
        if "items" in msg:
            self.received.setdefault(msg["type"], []).append(len(msg["items"]))
        if msg["type"] == "getdata":
            for kind, hash_ in msg["items"]:
                if kind == "tx" and hash_ in self.txs:
                    self.send(side, m.tx_msg(self.txs[hash_]))


class Withholder(Adversary):
    """Races to announce whatever it hears of, then never delivers it."""

    def on_message(self, side: Side, msg: dict) -> None:
        if msg["type"] == "inv":
            items = [(kind, h) for kind, h in msg["items"]]
            for other in self.ready:
                if other is not side:
                    self.send(other, m.inv(items))
        elif msg["type"] == "getdata":
            self.answer(side, msg["items"])

    def answer(self, side: Side, items) -> None:
        pass  # silence: the request must time out


class NotFounder(Withholder):
    """Races to announce, then says it does not have it."""

    def answer(self, side: Side, items) -> None:
        self.send(side, m.inv(list(items), "notfound"))


class Deaf(Adversary):
    """Stops reading after the handshake and keeps asking for headers."""

    def __init__(self, sim: Simulation, name: str, port: int, requests: int = 200,
                 period: float = 0.01):
        super().__init__(sim, name, port)
        self.requests = requests
        self.period = period
        self.deaf: set[int] = set()

    def reading(self, side: Side) -> bool:
        return side.conn.number not in self.deaf

    def on_ready(self, side: Side) -> None:
        self.deaf.add(side.conn.number)
        genesis = REGTEST.genesis.hash
        for n in range(self.requests):
            self.sim.after(n * self.period, self.send, side, m.getheaders_msg([genesis]))


class Flooder(Adversary):
    """Floods one kind of message: "inv", "addr", "getheaders" or "getdata"."""

    def __init__(self, sim: Simulation, name: str, port: int, kind: str, frames: int = 20,
                 size: int = 2000, period: float = 0.05, kinds: tuple[str, ...] = ("tx", "block")):
        super().__init__(sim, name, port)
        self.kind, self.frames, self.size, self.period = kind, frames, size, period
        self.kinds = kinds  # what an inv flood claims to have

    def on_ready(self, side: Side) -> None:
        for n in range(self.frames):
            self.sim.after(n * self.period, self._flood, side)

    def _flood(self, side: Side) -> None:
        if side not in self.ready:
            return
        rng = self.sim.rng
        if self.kind == "inv":
            self.send(side, m.inv([(rng.choice(self.kinds), rng.randbytes(32))
                                   for _ in range(self.size)]))
        elif self.kind == "addr":
            self.send(side, {"type": "addr", "addrs": [f"127.0.0.1:{rng.randrange(1024, 65536)}"
                                                       for _ in range(min(self.size, m.MAX_ADDRS))]})
        elif self.kind == "getheaders":
            self.send(side, m.getheaders_msg([REGTEST.genesis.hash]))
        elif self.kind == "getdata":
            tip = REGTEST.genesis.hash  # every node has it: the answer is a whole block each time
            self.send(side, m.inv([("block", tip)] * self.size, "getdata"))


class ForkHeaders(Adversary):
    """Mines ``length`` blocks on a fork from the funded tip, announces their
    headers, and never delivers a body (``answer``: "notfound" or None)."""

    def __init__(self, sim: Simulation, name: str, port: int, length: int = 20,
                 answer: str | None = "notfound"):
        super().__init__(sim, name, port)
        self.answer = answer
        chain = ChainState(REGTEST, chain_copy(), clock=lambda: sim.now)
        self.headers = []
        parent = chain.tip
        for height in range(parent.height + 1, parent.height + 1 + length):
            block = mine_block(parent.hash, height, REGTEST.pow_limit_bits,
                               int(sim.now) - 3600 + height, [],
                               [TxOut(REGTEST.subsidy(height), owner("mallory"))])
            self.headers.append(block.header)
            parent = chain.accept_header(block.header)
        chain.close()

    def on_ready(self, side: Side) -> None:
        self.send(side, m.headers_msg(self.headers))

    def on_message(self, side: Side, msg: dict) -> None:
        if msg["type"] == "getdata" and self.answer == "notfound":
            self.send(side, m.inv(list(msg["items"]), "notfound"))
        elif msg["type"] == "getheaders":
            self.send(side, m.headers_msg(self.headers))


class Idle(Adversary):
    """Opens ``connections`` connections to ``target`` and stays silent on all."""

    def __init__(self, sim: Simulation, name: str, port: int, target: str, connections: int):
        super().__init__(sim, name, port)
        self.refused = 0
        for _ in range(connections):
            sim.dial(self, target)

    def opened(self, side: Side) -> bool:
        return True

    def dial_failed(self, addr: str) -> None:
        self.refused += 1


class ListenLiar(Adversary):
    """Claims ``victim``'s listen address to ``target``, then breaks the protocol
    once, hoping ``target`` bans the victim. It first connects to the victim to
    copy the nonce the victim sends, in case ``target`` trusts nonces."""

    def __init__(self, sim: Simulation, name: str, port: int, victim: str, target: str):
        super().__init__(sim, name, port, claim=victim)
        self.target = target
        sim.dial(self, victim)

    def frame(self, side: Side, text: str) -> None:
        if side.remote.listen == self.claim and not side.inbound:  # the victim's version
            msg = m.parse(text)
            if msg is not None and msg["type"] == "version":
                self.nonce = msg["nonce"]
                self.sim.close(side, "got what it came for")
                self.sim.dial(self, self.target)
            return
        super().frame(side, text)

    def on_ready(self, side: Side) -> None:
        self.send(side, '{"type": "ping", "nonce": 1')  # malformed JSON: a ban, but whose?


class PrivateMiner(HonestNode):
    """A real node that mines a secret branch while partitioned off.

    ``mine_privately`` mines on whatever it has, including a tx spending a
    coin the public network may already have spent elsewhere (a double
    spend); the scenario heals the partition to release the branch."""

    honest = False

    def mine_privately(self, count: int, double_spend=None) -> None:
        if double_spend is not None:
            self.submit(double_spend)
        self.mine(owner("mallory"), count)


def random_adversary(sim: Simulation, name: str, port: int, honest_addrs: list[str],
                     rng: random.Random) -> Adversary:
    """One adversary of a random kind, sized to keep a 20-node run quick."""
    kind = rng.choice(["withholder", "notfound", "deaf", "flood-inv", "flood-addr",
                       "flood-getheaders", "flood-getdata", "fork", "liar"])
    if kind == "withholder":
        return Withholder(sim, name, port)
    if kind == "notfound":
        return NotFounder(sim, name, port)
    if kind == "deaf":
        return Deaf(sim, name, port, requests=60)
    if kind.startswith("flood-"):
        return Flooder(sim, name, port, kind[len("flood-"):], frames=10, size=200)
    if kind == "fork":
        return ForkHeaders(sim, name, port, length=rng.randrange(5, 25),
                           answer=rng.choice(["notfound", None]))
    victim, target = rng.sample(honest_addrs, 2)
    return ListenLiar(sim, name, port, victim, target)

