"""A blockchain on the lab bench: chains, coins and transactions built in
one Python process, for notebooks, a shell, or a lesson.

    from toychain.lab import Lab, COIN
    lab = Lab()                               # a regtest chain in memory, at genesis
    alice, bob = lab.account("alice"), lab.account("bob")
    lab.mine(10, to=alice)                    # alice's genesis coin (50 TOY) is now mature
    pay = lab.pay(alice, [(bob, 10 * COIN)])  # an honest payment, signed, with change
    lab.submit(pay)                           # Verdict(accepted=True, ...): in the mempool
    lab.mine(1)                               # a block takes it from the mempool
    lab.balance(bob)                          # 1_000_000_000 units: the sum of bob's coins
    bad = lab.sign(lab.coins(bob), [(alice, 15 * COIN)], signer=bob)   # 10 TOY in, 15 out
    print(lab.explain_text(bad))              # every check the node runs, where it stops

Nothing here is a model of the node: a ``Lab`` holds the node's own
``ChainState`` (chain/chainstate.py, SQLite in memory) and ``Mempool``
(node/mempool.py), and every verdict comes from them: ``submit`` is
``Mempool.accept``, ``mine`` is ``ChainState.process_block`` (followed by
the mempool, as a node does), ``explain`` is what ``explaintransaction``
answers (node/explain.py). Transactions are built and signed as a wallet
does (``chain.mining.sign_tx``), and ``sign`` and ``tamper`` build any
transaction at all, overspends and forgeries included, because the point is
to watch the rules refuse them.

Everything repeats: the node's clock is fixed, block times follow from
their parents, keys are the well-known demo accounts of PROTOCOL.md section
2 (any name works), and signatures are RFC 6979 deterministic. So the same
code gives the same txids, block hashes and traces every time, which is
what lets the lesson notebooks in docs/lessons/ be checked by the tests.
"""

from dataclasses import dataclass

from chain.address import decode_address, encode_address
from chain.amounts import COIN, format_toy
from chain.block import Block
from chain.chainstate import ChainState
from chain.errors import RuleError
from chain.mining import build_block, sign_tx, solve
from chain.params import GENESIS_TIME, MAX_BLOCK_SIZE, REGTEST, Network
from chain.sigcache import SignatureCache
from chain.storage import Store
from chain.tx import OutPoint, Tx, TxIn, TxOut
from demos.actors import Actor as Account, demo_account
from display.trace import trace_text
from node.explain import explain
from node.mempool import Mempool
from node.miner import COINBASE_ROOM

__all__ = ["COIN", "Account", "Coin", "Lab", "Mined", "Verdict", "toy"]

NOW = GENESIS_TIME + 10_000_000  # the lab node's clock: fixed, after every block it makes


def toy(units: int) -> str:
    """``1_000_000_000`` -> ``"10.00000000 TOY"`` (exact: integers of units)."""
    return format_toy(units)


@dataclass(frozen=True)
class Coin:
    """One unspent output: where it is, how much, whose, since when."""
    txid: str
    index: int
    amount: int
    address: str
    height: int
    coinbase: bool

    @property
    def outpoint(self) -> OutPoint:
        return OutPoint(bytes.fromhex(self.txid), self.index)

    @property
    def owner(self) -> bytes:
        return decode_address(self.address)

    @property
    def txout(self) -> TxOut:
        return TxOut(self.amount, self.owner)

    def __str__(self) -> str:
        return f"{self.txid[:16]}...:{self.index} {toy(self.amount)} of {self.address}"


@dataclass(frozen=True)
class Verdict:
    """What the mempool said to a transaction: accepted (with its fee), or
    refused with a reject code (PROTOCOL.md section 5) and a sentence."""
    accepted: bool
    fee: int | None = None
    reject_reason: str | None = None
    message: str | None = None

    def __str__(self) -> str:
        return f"accepted, fee {toy(self.fee)}" if self.accepted else f"refused: {self.message}"


@dataclass(frozen=True)
class Mined:
    """A block and what the chain did with it: ``status`` is "connected"
    (now on the best chain), "side" (stored on a branch with less work) or
    "invalid" (``message`` says why); ``reorg`` counts the blocks it made
    the chain leave."""
    hash: str
    height: int
    status: str
    message: str | None = None
    reorg: int = 0


Who = Account | str | bytes


def _owner(who: Who) -> bytes:
    if isinstance(who, Account):
        return who.owner
    if isinstance(who, bytes):
        return who
    return decode_address(who)


class Lab:
    """A regtest node's chain state and mempool in this process (see the
    module docstring). ``min_fee_rate`` is the mempool's, in units per byte."""

    def __init__(self, net: Network = REGTEST, min_fee_rate: int = 1):
        self.net = net
        self.chain = ChainState(net, Store(), clock=lambda: NOW)
        self.mempool = Mempool(self.chain, min_fee_rate=min_fee_rate, clock=lambda: NOW,
                               sigcache=SignatureCache())

    def account(self, name: str) -> Account:
        """The demo account ``name`` (its key is public knowledge, PROTOCOL.md
        section 2: for lessons only): ``.address``, ``.owner``, ``.pubkey``."""
        return demo_account(name)

    # -- reading ----------------------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.chain.height

    @property
    def tip(self) -> str:
        """The hash of the best chain's last block."""
        return self.chain.tip.hash.hex()

    def coins(self, who: Who, mature_only: bool = False) -> list[Coin]:
        """``who``'s confirmed coins that no mempool tx spends yet, largest
        first (``mature_only``: only those the next block may spend)."""
        next_height = self.chain.height + 1
        found = [Coin(op.txid.hex(), op.index, c.amount, encode_address(c.owner), c.height, c.coinbase)
                 for op, c in self.chain.store.coins_of(_owner(who)) if op not in self.mempool.spends]
        if mature_only:
            found = [c for c in found if not c.coinbase
                     or next_height - c.height >= self.net.coinbase_maturity]
        return sorted(found, key=lambda c: (-c.amount, c.height, c.txid, c.index))

    def balance(self, who: Who) -> int:
        """The sum of ``who``'s confirmed coins, in units: never below zero."""
        return sum(c.amount for _, c in self.chain.store.coins_of(_owner(who)))

    def supply(self) -> int:
        """Units in all unspent coins: every block reward so far, less fees not claimed."""
        return self.chain.store.utxo_stats()[1]

    def blocks(self) -> list[dict]:
        """Every block the chain knows, by height: its hash, parent, chain
        work (all the work from genesis to it) and whether it is on the best chain."""
        entries = sorted(self.chain.index.values(), key=lambda e: (e.height, e.hash))
        return [{"height": e.height, "hash": e.hash.hex(), "parent": e.header.prev_hash.hex(),
                 "chainwork": e.chainwork, "best_chain": self.chain.is_active(e)} for e in entries]

    def find(self, txid: str) -> str:
        """Where tx ``txid`` is: "block at height H", "mempool" or "nowhere"."""
        raw = bytes.fromhex(txid)
        if raw in self.mempool:
            return "mempool"
        found = self.chain.find_tx(raw)
        return f"block at height {found[1].height}" if found else "nowhere"

    # -- transactions ---------------------------------------------------------------------------
    def sign(self, coins: list[Coin], outputs: list[tuple[Who, int]], signer: Account | list[Account],
             locktime: int = 0, version: int = 1) -> Tx:
        """Any transaction: spends ``coins`` (whoever owns them), pays
        ``outputs`` [(who, units)], each input signed by ``signer`` (one
        account, or one per input). Nothing is checked: this is how to write
        an overspend, a theft or a negative output, to see it refused."""
        signers = [signer] * len(coins) if isinstance(signer, Account) else list(signer)
        unsigned = Tx(version, tuple(TxIn(c.outpoint.txid, c.index, s.pubkey, bytes(64))
                                     for c, s in zip(coins, signers)),
                      tuple(TxOut(amount, _owner(who)) for who, amount in outputs), locktime)
        return sign_tx(unsigned, [s.secret for s in signers], [c.txout for c in coins], self.net.magic)

    def pay(self, payer: Account, outputs: list[tuple[Who, int]], fee_rate: int | None = None) -> Tx:
        """An honest payment, as a wallet makes it: ``payer``'s mature coins,
        largest first, until they cover the outputs and the fee (``fee_rate``
        units per byte, default the mempool's minimum), the change back to
        ``payer``. ValueError if they cannot: a wallet never signs an overspend."""
        rate = self.mempool.min_fee_rate if fee_rate is None else fee_rate
        want = sum(amount for _, amount in outputs)
        chosen: list[Coin] = []
        for coin in self.coins(payer, mature_only=True):
            chosen.append(coin)
            trial = self.sign(chosen, [*outputs, (payer, 0)], payer)
            change = sum(c.amount for c in chosen) - want - rate * trial.size
            if change >= 0:
                return self.sign(chosen, [*outputs, (payer, change)] if change else outputs, payer)
        have = sum(c.amount for c in chosen)
        raise ValueError(f"{payer.name} has {toy(have)} spendable, not enough for {toy(want)} and the fee")

    @staticmethod
    def tamper(tx: Tx, outputs: list[tuple[Who, int]]) -> Tx:
        """``tx`` with other outputs and the same signatures: what a relay
        that edits a payment in transit sends on."""
        return Tx(tx.version, tx.inputs, tuple(TxOut(a, _owner(w)) for w, a in outputs), tx.locktime)

    def submit(self, tx: Tx) -> Verdict:
        """Offer ``tx`` to the mempool, as ``sendrawtransaction`` does."""
        try:
            fee, _ = self.mempool.accept(tx)
        except RuleError as error:
            return Verdict(False, reject_reason=error.code, message=str(error))
        return Verdict(True, fee=fee)

    def explain(self, tx: Tx) -> dict:
        """Every check the node runs on ``tx`` against its chain and mempool,
        with the values compared: ``explaintransaction``'s answer. Nothing changes."""
        return explain(self.mempool, tx)

    def explain_text(self, tx: Tx) -> str:
        """``explain(tx)`` as the table ``toychain explain`` prints, in plain text."""
        return trace_text(self.explain(tx), format_toy)

    # -- blocks ----------------------------------------------------------------------------------
    def mine(self, count: int = 1, to: Who | None = None, txs: list[Tx] | None = None,
             parent: str | None = None) -> list[Mined]:
        """``count`` blocks, each paying subsidy + fees to ``to`` (default the
        demo account "miner"). On the best tip (``parent`` None) a block takes
        the mempool's txs by fee rate, as the node's miner does; ``txs`` puts
        exactly those in the first block instead (the others hold none). With
        ``parent`` (a block hash) the blocks extend that block: a fork, whose
        fate is the chain state's to decide by chain work."""
        owner = _owner(to if to is not None else self.account("miner"))
        results = []
        for n in range(count):
            base = self.chain.index[bytes.fromhex(parent)] if parent else self.chain.tip
            if txs is not None:  # hand-picked: the first block holds them, the others none
                chosen = list(txs) if n == 0 else []
                fees = sum(self._fee(tx) for tx in chosen)
            elif parent is None:  # on the best tip: the mempool's, as the node's miner takes them
                chosen, fees = self.mempool.select(MAX_BLOCK_SIZE - COINBASE_ROOM)
            else:
                chosen, fees = [], 0
            template = build_block(base.hash, base.height + 1, self.chain.next_required_bits(base),
                                   max(base.header.time, self.chain.median_time_past(base)) + 1,
                                   chosen, [TxOut(self.net.subsidy(base.height + 1) + fees, owner)])
            block = Block(solve(template.header), template.txs)
            outcome = self.chain.process_block(block)
            self.mempool.update_for_chain(outcome.connected, outcome.disconnected)
            entry = self.chain.index.get(block.hash)
            results.append(Mined(block.hash.hex(), base.height + 1, outcome.status,
                                 str(outcome.error) if outcome.error else None,
                                 len(outcome.disconnected)))
            if parent is not None:
                parent = block.hash.hex() if entry is not None else parent
        return results

    def _fee(self, tx: Tx) -> int:
        """Inputs minus outputs, for the coinbase of a hand-picked block (0 if
        an input is unknown: the block will be refused anyway)."""
        coins = [self.chain.get_coin(txin.outpoint) or self.mempool.get_coin(txin.outpoint)
                 for txin in tx.inputs]
        if any(c is None for c in coins) or not coins:
            return 0
        return max(0, sum(c.amount for c in coins) - sum(o.amount for o in tx.outputs))

