"""The world a demo acts in: a few nodes reached over JSON-RPC, and a bank.

A demo never reaches inside a node. Everything it does goes through the
node's public JSON-RPC (PROTOCOL.md section 8), as any wallet or script
would: ``sendrawtransaction`` for payments (honest or not), ``submitblock``
for blocks a miner built, ``getaddresshistory`` for balances,
``gettxoutsetinfo`` for the money supply, ``getrecentrejects`` for what a
node refused from its peers.

Admin methods (``generatetoaddress``, ``addnode``, ``disconnectnode``) need
a node's cookie. On a devnet the demo starts itself (``World.local``) it has
every cookie and mines a block whenever it needs one. On a running network
(``toychain demo NAME --node URL``) it has the cookies it was given
(``--datadir`` or ``--devnet``); where it has none, it waits for the
network's own miners and says so.

A *balance* here is what the chain says an address holds: the sum of the
``delta`` of every confirmed entry of ``getaddresshistory`` (coins received
minus coins spent), with the mempool's entries shown apart as *pending*.
Every wait has a deadline; a demo that runs out of time raises ``DemoError``
with a sentence saying what it was waiting for.
"""

import contextlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from chain.params import NETWORKS, Network
from chain.tx import Tx
from client.rpc import RpcClientError, rpc_call, rpc_pages

from .actors import Actor, Cast, demo_account, fresh_actor, new_run_id
from .narrator import Narrator, toy
from .txs import Coin, fee_for, pay

GOSSIP_SECONDS = 30.0      # a tx or block reaching every node
MINER_SECONDS = 300.0      # the network's own miners confirming something
PATIENCE_SECONDS = 30.0    # ... before the demo mines a block itself, if it can
GENERATE_SECONDS = 300.0   # generatetoaddress at a live network's difficulty
BANK_BLOCKS = 12           # blocks mined to the bank on a fresh devnet: 3 mature coins


class DemoError(Exception):
    """The demo could not run as planned (the sentence says why)."""


@dataclass
class NodeRef:
    """One node: its name in the narration, its RPC URL, its cookie if known."""
    name: str
    url: str
    token: str | None = None

    @property
    def addr(self) -> str:
        parsed = urlparse(self.url)
        return f"{parsed.hostname}:{parsed.port or 80}"

    def call(self, method: str, *params, timeout: float = 30.0):
        return rpc_call(self.url, method, list(params), self.token, timeout)

    def pages(self, method: str, *params, timeout: float = 30.0) -> list:
        return rpc_pages(self.url, method, list(params), self.token, timeout)


@dataclass
class Answer:
    """What one node said to a tx or block."""
    node: str
    accepted: bool
    reject_reason: str | None = None
    message: str | None = None

    def to_json(self) -> dict:
        return {"node": self.node, "accepted": self.accepted,
                "reject_reason": self.reject_reason, "message": self.message}


def sentence(error: RpcClientError) -> str:
    """``"bad-txns-in-belowout: inputs ..."`` -> ``"inputs ..."``."""
    text = str(error)
    prefix = f"{error.reject_reason}: "
    return text[len(prefix):] if error.reject_reason and text.startswith(prefix) else text


class Checks:
    """The claims a demo makes, each verified on the network."""

    def __init__(self):
        self.items: list[dict] = []

    def __call__(self, claim: str, holds: bool) -> bool:
        self.items.append({"claim": claim, "holds": bool(holds)})
        return bool(holds)

    @property
    def ok(self) -> bool:
        return all(item["holds"] for item in self.items)

    def outcome(self, **facts) -> dict:
        return {**facts, "checks": self.items, "ok": self.ok}


class World:
    """The nodes a demo talks to (``nodes[0]`` is where payments are sent and
    balances read unless a demo says otherwise), the bank, and whether the
    network is the demo's own (``own``: nobody else mines, every cookie known)."""

    def __init__(self, nodes: list[NodeRef], bank: Actor, own: bool = False,
                 run_id: str | None = None, generate: bool = False):
        if not nodes:
            raise DemoError("no nodes to talk to")
        self.nodes = nodes
        self.bank = bank
        self.own = own
        self.generate = generate  # on a running network: mine at once, do not wait for miners
        self.run_id = run_id or new_run_id()
        self.devnet = None  # the LocalDevnet when own
        self._casts: dict[str, int] = {}
        self.net = self._check_network()

    # -- construction ------------------------------------------------------------------------
    def _check_network(self) -> Network:
        names, genesis = set(), set()
        for node in self.nodes:
            try:
                names.add(node.call("getblockchaininfo")["network"])
                genesis.add(node.call("getblockhash", 0))
            except RpcClientError as error:
                raise DemoError(f"{node.name}: {error}") from None
        if len(names) != 1 or len(genesis) != 1:
            raise DemoError(f"the nodes are not on one network ({', '.join(sorted(names))})")
        return NETWORKS[names.pop()]

    @classmethod
    @contextlib.contextmanager
    def local(cls, say: Narrator, directory: Path | None = None):
        """A fresh 3-node devnet in ``directory`` (default: a temporary one),
        a bank with mature coins, stopped when the ``with`` block ends."""
        from .localnet import LocalDevnet
        with contextlib.ExitStack() as stack:
            if directory is None:
                directory = Path(stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="toychain-demo-")))
            devnet = stack.enter_context(LocalDevnet(directory))
            nodes = [NodeRef(n.name, n.url, n.token()) for n in devnet.nodes]
            run_id = new_run_id()
            bank = fresh_actor(run_id, "setup", "bank", "a fresh key that the demo mines blocks to")
            world = cls(nodes, bank, own=True, run_id=run_id)
            world.devnet = devnet
            say.start("setup", "A private devnet for the demos",
                      "Three Toychain nodes on this computer, in a temporary directory. They do "
                      "not mine by themselves: a block appears only when the demo asks for one.",
                      world.describe())
            world.wait(lambda: world.linked(), GOSSIP_SECONDS, "the three nodes to connect")
            say.step("toychain", f"starts {len(nodes)} devnet nodes and links each to every other",
                     note=", ".join(f"{n.name} at {n.url}" for n in nodes))
            world.mine(BANK_BLOCKS, to=bank)
            say.step("the bank", f"mines {BANK_BLOCKS} blocks to itself, 50 TOY each",
                     note=f"A block's reward can be spent {world.net.coinbase_maturity} blocks "
                          f"later (coinbase maturity): the first "
                          f"{BANK_BLOCKS - world.net.coinbase_maturity + 1} rewards are "
                          f"spendable now, enough to fund the demos.",
                     balances=world.balances([bank]), seen_at=nodes[0].name)
            yield world

    @classmethod
    def running(cls, urls: list[str], tokens: list[str | None], names: list[str] | None = None,
                bank_name: str = "alice", generate: bool = False) -> "World":
        """The nodes of a running network; the bank is the well-known demo
        account ``bank_name`` (on ``toychain devnet up``, node 1 mines to alice).
        With ``generate`` the demo mines each block it needs at once (cookies
        needed) instead of waiting for the network's miners first."""
        names = names or [f"node{i + 1}" for i in range(len(urls))]
        nodes = [NodeRef(n, u.rstrip("/"), t) for n, u, t in zip(names, urls, tokens)]
        bank = demo_account(bank_name, f"the well-known demo account {bank_name}, used as the bank")
        if generate and not all(tokens):
            missing = ", ".join(n.name for n in nodes if not n.token)
            raise DemoError(f"mining blocks needs every node's cookie; none for {missing} "
                            f"(give --datadir for each --node, or --devnet)")
        return cls(nodes, bank, own=False, generate=generate)

    def describe(self) -> list[dict]:
        return [{"name": n.name, "url": n.url} for n in self.nodes]

    def cast(self, demo: str) -> Cast:
        """Fresh actors for one run of ``demo`` (a second run gets new ones)."""
        self._casts[demo] = self._casts.get(demo, 0) + 1
        return Cast(self.run_id, f"{demo} {self._casts[demo]}")

    def name_of(self, addr: str) -> str:
        """``"127.0.0.1:8331"`` -> ``"node1"`` (or the address if not one of ours)."""
        return next((n.name for n in self.nodes if n.addr == addr), addr)

    # -- reading ---------------------------------------------------------------------------------
    def node(self, which: int | str | NodeRef | None) -> NodeRef:
        if isinstance(which, NodeRef):
            return which
        if which is None:
            return self.nodes[0]
        if isinstance(which, int):
            return self.nodes[which]
        return next(n for n in self.nodes if n.name == which)

    def call(self, node, method: str, *params, timeout: float = 30.0, paged: bool = False):
        """One call (``paged``: every page of listunspent or getaddresshistory)."""
        node = self.node(node)
        try:
            if paged:
                return node.pages(method, *params, timeout=timeout)
            return node.call(method, *params, timeout=timeout)
        except RpcClientError as error:
            if error.code is None:  # unreachable or unauthorized: not a refusal
                raise DemoError(f"{node.name}: {error}") from None
            raise

    def balances(self, actors: list[Actor], node=None) -> dict[str, dict]:
        """{name: {"confirmed": units, "pending": units}} as ``node`` sees them."""
        result = {}
        for actor in actors:
            history = self.call(node, "getaddresshistory", actor.address, paged=True)
            result[actor.name] = {
                "confirmed": sum(h["delta"] for h in history if h["height"] is not None),
                "pending": sum(h["delta"] for h in history if h["height"] is None)}
        return result

    def balances_everywhere(self, actors: list[Actor]) -> dict[str, dict]:
        return {n.name: self.balances(actors, n) for n in self.nodes}

    def supply(self, node=None) -> dict:
        """{"height", "total"}: the units in all unspent coins at that height."""
        info = self.call(node, "gettxoutsetinfo")
        return {"height": info["height"], "total": info["total_amount"]}

    def supplies(self) -> dict[str, dict]:
        return {n.name: self.supply(n) for n in self.nodes}

    def issued(self, height: int) -> int:
        """The block rewards of heights 0..height: all the money there can be."""
        return sum(self.net.subsidy(h) for h in range(height + 1))

    def supply_unchanged(self, before: dict, after: dict) -> bool:
        """At every node the supply moved by exactly the rewards of the blocks
        mined between the two readings (not at all if none was): nothing else
        created or destroyed money. Holds on a live network too."""
        return before.keys() == after.keys() and all(
            after[n]["total"] - before[n]["total"]
            == self.issued(after[n]["height"]) - self.issued(before[n]["height"]) for n in before)

    def tip(self, node=None) -> str:
        return self.call(node, "getbestblockhash")

    def height(self, node=None) -> int:
        return self.call(node, "getblockchaininfo")["height"]

    def coins(self, actor: Actor, node=None) -> list[Coin]:
        """``actor``'s confirmed, mature coins not spent by a pending tx, largest first."""
        rows = self.call(node, "listunspent", [actor.address], 1, paged=True)
        return sorted((Coin.from_row(r) for r in rows if r["mature"]), key=lambda c: -c.amount)

    def tx_state(self, txid: str, node=None) -> int | None:
        """Confirmations of ``txid`` at ``node`` (0 = in its mempool), None if unknown."""
        try:
            return self.call(node, "getrawtransaction", txid)["confirmations"]
        except RpcClientError as error:
            if error.code == -5:
                return None
            raise

    def mempool(self, node=None) -> set[str]:
        return set(self.call(node, "getrawmempool"))

    def rejects(self, node=None) -> list[dict]:
        return self.call(node, "getrecentrejects")

    def peers(self, node=None) -> set[str]:
        return {p["addr"] for p in self.call(node, "getpeerinfo")}

    def linked(self, nodes: list[NodeRef] | None = None) -> bool:
        """Is every node of ``nodes`` connected to every other?"""
        nodes = [self.node(n) for n in (nodes or self.nodes)]
        return all({o.addr for o in nodes if o is not n} <= self.peers(n) for n in nodes)

    # -- submitting ------------------------------------------------------------------------------
    def send(self, node, tx: Tx | str) -> Answer:
        node = self.node(node)
        raw = tx if isinstance(tx, str) else tx.raw.hex()
        try:
            txid = self.call(node, "sendrawtransaction", raw)
            return Answer(node.name, True, None, f"in its mempool as {txid[:16]}..., relayed to its peers")
        except RpcClientError as error:
            return Answer(node.name, False, error.reject_reason or f"error {error.code}", sentence(error))

    def send_everywhere(self, tx: Tx | str) -> list[Answer]:
        return [self.send(node, tx) for node in self.nodes]

    def submit_block(self, node, block) -> Answer:
        node = self.node(node)
        try:
            result = self.call(node, "submitblock", block.raw.hex())
        except RpcClientError as error:
            return Answer(node.name, False, error.reject_reason or f"error {error.code}", sentence(error))
        if result is None:
            where = "its best chain" if self.tip(node) == block.hash.hex() else "a side branch"
            return Answer(node.name, True, None, f"stored on {where}")
        message = next((r["message"] for r in self.rejects(node)
                        if r["kind"] == "block" and r["id"] == block.hash.hex()), result)
        return Answer(node.name, False, result, message)

    # -- waiting -----------------------------------------------------------------------------------
    @staticmethod
    def wait(condition, timeout: float, what: str):
        """Poll ``condition()`` until it is true (returned); DemoError after ``timeout``."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DemoError(f"gave up after {timeout:.0f} s waiting for {what}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def synced(self, nodes=None) -> bool:
        return len({self.tip(n) for n in (nodes or self.nodes)}) == 1

    def wait_synced(self, nodes=None, timeout: float = GOSSIP_SECONDS) -> str:
        nodes = [self.node(n) for n in (nodes or self.nodes)]
        self.wait(lambda: self.synced(nodes), timeout,
                  f"{', '.join(n.name for n in nodes)} to agree on the best block")
        return self.tip(nodes[0])

    def wait_everywhere(self, txid: str, confirmations: int = 0, nodes=None,
                        timeout: float = GOSSIP_SECONDS, what: str | None = None) -> None:
        nodes = [self.node(n) for n in (nodes or self.nodes)]

        def there() -> bool:
            states = [self.tx_state(txid, n) for n in nodes]
            return all(s is not None and s >= confirmations for s in states)
        self.wait(there, timeout, what or f"tx {txid[:16]}... at every node")

    # -- blocks --------------------------------------------------------------------------------------
    def can_mine(self, node=None) -> bool:
        return self.node(node).token is not None

    def mine(self, blocks: int = 1, node=None, to: Actor | None = None, reach=None) -> list[str]:
        """``blocks`` blocks by ``generatetoaddress`` at ``node`` (its cookie is
        needed), paid to ``to`` (default the bank); then waits until every node
        of ``reach`` (default: all) has the last one."""
        node = self.node(node)
        if not self.can_mine(node):
            raise DemoError(f"mining at {node.name} needs its cookie (--datadir or --devnet)")
        hashes = self.call(node, "generatetoaddress", blocks, (to or self.bank).address,
                           timeout=GENERATE_SECONDS)
        reach = [self.node(n) for n in (reach or self.nodes)]
        last = hashes[-1]

        def has_it() -> bool:
            return all(self._active(last, n) for n in reach)
        self.wait(has_it, GOSSIP_SECONDS, f"block {last[:16]}... to reach "
                                          f"{', '.join(n.name for n in reach)}")
        return hashes

    def _active(self, block_hash: str, node) -> bool:
        try:
            return self.call(node, "getblockheader", block_hash)["confirmations"] >= 1
        except RpcClientError as error:
            if error.code == -5:
                return False
            raise

    def new_block(self, settled, say: Narrator | None = None, node=None, what: str = "a block"):
        """Get a new block until ``settled()`` is true (and return its value).
        On our own devnet, or with ``generate``: mine one at ``node``. Else wait
        for the network's miners (they are usually at work, and a block of ours
        would race theirs); if none comes within PATIENCE_SECONDS and we hold
        ``node``'s cookie, mine one there."""
        node = self.node(node)
        if self.own:
            self.mine(1, node)
            return self.wait(settled, GOSSIP_SECONDS, what)
        if not self.generate:
            if say is not None:
                fallback = (f"after {PATIENCE_SECONDS:.0f} s the demo mines one at {node.name}"
                            if self.can_mine(node) else
                            f"the demo holds no cookie to mine one itself (waiting up to "
                            f"{MINER_SECONDS:.0f} s)")
                say.step("the demo", "waits for the network's own miners to put it in a block",
                         note=f"A block comes every few seconds on a devnet; {fallback}.")
            if not self.can_mine(node):
                return self.wait(settled, MINER_SECONDS, f"{what} (is anyone mining?)")
            try:
                return self.wait(settled, PATIENCE_SECONDS, what)
            except DemoError:
                pass
        self.call(node, "generatetoaddress", 1, self.bank.address, timeout=GENERATE_SECONDS)
        return self.wait(settled, MINER_SECONDS, what)

    def confirm(self, txids: list[str], say: Narrator | None = None, node=None) -> None:
        """Get ``txids`` (sent to ``node``) into a block that every node has."""
        node = self.node(node)
        for txid in txids:
            self.wait_everywhere(txid, 0, [node])

        def confirmed() -> bool:
            return all((self.tx_state(t, n) or 0) >= 1 for t in txids for n in self.nodes)
        self.new_block(confirmed, say, node, f"{len(txids)} tx(s) to be confirmed at every node")

    # -- money -----------------------------------------------------------------------------------------
    def fund(self, say: Narrator, grants: list[tuple[Actor, int]], also_show: list[Actor] = ()) -> dict:
        """The bank pays each actor its amount in one tx, confirmed by a block.
        Each actor then holds exactly one coin of that amount."""
        total = sum(amount for _, amount in grants)
        chosen = self._bank_coins(total, len(grants) + 1)
        tx = pay(self.bank, chosen, [(a.owner, amount) for a, amount in grants], self.net)
        answer = self.send(self.nodes[0], tx)
        if not answer.accepted:
            raise DemoError(f"the bank's payment was refused: {answer.reject_reason}: {answer.message}")
        self.confirm([tx.txid.hex()], say)
        actors = [a for a, _ in grants] + list(also_show)
        who = ", ".join(f"{a.name} {toy(amount)}" for a, amount in grants)
        say.step("the bank", f"pays {who}, and a block confirms it",
                 note=f"{', '.join(a.name for a, _ in grants)}: {grants[0][0].about}"
                      f"{'' if len(grants) == 1 else ' each'}.",
                 balances=self.balances(actors), seen_at=self.nodes[0].name)
        return {"txid": tx.txid.hex()}

    def _bank_coins(self, total: int, n_out: int) -> list[Coin]:
        """The bank's coins (largest first) that cover ``total`` plus the fee."""
        for _ in range(self.net.coinbase_maturity):
            chosen, have = [], 0
            for coin in self.coins(self.bank):
                chosen.append(coin)
                have += coin.amount
                if have >= total + fee_for(len(chosen), n_out):
                    return chosen
            if not self.own:
                break
            self.mine(1)  # our own devnet: each new block matures one more reward
        raise DemoError(f"the bank ({self.bank.about}, {self.bank.address}) has only "
                        f"{toy(have)} spendable; the demo needs {toy(total)} and a fee")

    def coin_of(self, actor: Actor, node=None) -> Coin:
        """The one coin a freshly funded actor holds."""
        coins = self.coins(actor, node)
        if len(coins) != 1:
            raise DemoError(f"{actor.name} should hold exactly one coin, holds {len(coins)}")
        return coins[0]


def read_devnet(directory: Path) -> tuple[list[str], list[str | None], list[str], str]:
    """(urls, tokens, names, bank name) from ``DIR/devnet.json`` as ``toychain
    devnet up`` writes it; the bank is the demo account node 1 mines to."""
    config = Path(directory) / "devnet.json"
    try:
        nodes = json.loads(config.read_text())["nodes"]
    except (OSError, ValueError, KeyError) as error:
        raise DemoError(f"cannot read {config}: {error}") from None
    urls = [f"http://127.0.0.1:{n['port']}" for n in nodes]
    tokens = [read_cookie(Path(n["datadir"])) for n in nodes]
    names = [n["name"] for n in nodes]
    return urls, tokens, names, nodes[0].get("miner", "alice")


def read_cookie(datadir: Path) -> str | None:
    try:
        return (Path(datadir) / ".cookie").read_text().strip()
    except OSError:
        return None
