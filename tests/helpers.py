"""Shared test helpers: demo keys, signed transactions and a regtest chain
you can mine on by hand with a fixed clock.

    h = Harness()                 # regtest chain at genesis, clock fixed
    h.mine_empty(10)              # 10 blocks paying alice, genesis coin now mature
    coin = h.coins_of("alice")[0] # (OutPoint, Coin)
    tx = spend([coin], "alice", [("bob", 10 * COIN)])
    outcome = h.mine([tx])        # BlockOutcome; .status, .error
"""

import time

from chain.amounts import COIN
from chain.block import Block
from chain.chainstate import BlockOutcome, ChainState
from chain.coins import Coin
from chain.keys import demo_private_key, owner_of, public_key
from chain.mining import build_block, mine_block, sign_tx, solve
from chain.params import GENESIS_TIME, REGTEST, Network
from chain.storage import Store
from chain.tx import OutPoint, Tx, TxIn, TxOut

NOW = GENESIS_TIME + 10_000_000  # the fixed "node clock" of tests


def secret(name: str) -> bytes:
    return demo_private_key(name)


def pub(name: str) -> bytes:
    return public_key(secret(name))


def owner(name_or_owner) -> bytes:
    return name_or_owner if isinstance(name_or_owner, bytes) else owner_of(pub(name_or_owner))


def make_tx(coins: list[tuple[OutPoint, Coin]], signer: str | list[str],
            outputs: list[tuple[object, int]], locktime: int = 0,
            net: Network = REGTEST, version: int = 1) -> Tx:
    """A tx spending ``coins``, signed by ``signer`` (one name, or one per input),
    paying ``outputs`` [(name or owner bytes, units)]."""
    signers = [signer] * len(coins) if isinstance(signer, str) else list(signer)
    unsigned = Tx(version,
                  tuple(TxIn(op.txid, op.index, pub(name), bytes(64)) for (op, _), name in zip(coins, signers)),
                  tuple(TxOut(amount, owner(who)) for who, amount in outputs), locktime)
    return sign_tx(unsigned, [secret(n) for n in signers], [c.txout for _, c in coins], net.magic)


spend = make_tx


class Harness:
    """A regtest ChainState plus the bookkeeping to mine blocks by hand."""

    def __init__(self, net: Network = REGTEST, store: Store | None = None, clock=lambda: NOW,
                 **kwargs):
        self.net = net
        self.chain = ChainState(net, store or Store(), clock=clock, **kwargs)

    @property
    def tip(self):
        return self.chain.tip

    def next_time(self, parent=None) -> int:
        parent = parent or self.chain.tip
        return max(parent.header.time, self.chain.median_time_past(parent)) + 1

    def block(self, txs: list[Tx] = (), parent=None, reward_to="alice", fees: int = 0,
              coinbase_outputs: list[TxOut] | None = None, time: int | None = None,
              height: int | None = None, bits: int | None = None, solve_pow: bool = True) -> Block:
        """A block on ``parent`` (default: the tip) claiming subsidy + ``fees``."""
        parent = parent or self.chain.tip
        h = parent.height + 1 if height is None else height
        if coinbase_outputs is None:
            coinbase_outputs = [TxOut(self.net.subsidy(parent.height + 1) + fees, owner(reward_to))]
        block = build_block(parent.hash, h, self.chain.next_required_bits(parent) if bits is None else bits,
                            self.next_time(parent) if time is None else time,
                            list(txs), coinbase_outputs)
        return resolve(block) if solve_pow else block

    def mine(self, txs: list[Tx] = (), **kwargs) -> BlockOutcome:
        return self.chain.process_block(self.block(txs, **kwargs))

    def mine_empty(self, n: int, reward_to="alice") -> list[Block]:
        blocks = []
        for _ in range(n):
            block = self.block(reward_to=reward_to)
            outcome = self.chain.process_block(block)
            assert outcome.status == "connected", outcome
            blocks.append(block)
        return blocks

    def coins_of(self, name) -> list[tuple[OutPoint, Coin]]:
        return self.chain.store.coins_of(owner(name))

    def mature_coins_of(self, name) -> list[tuple[OutPoint, Coin]]:
        height = self.chain.height + 1
        return [(op, c) for op, c in self.coins_of(name)
                if not c.coinbase or height - c.height >= self.net.coinbase_maturity]

    def balance(self, name) -> int:
        return sum(c.amount for _, c in self.coins_of(name))


class InjectedFault(Exception):
    """A simulated crash inside a database transaction."""


class FailingDB:
    """Proxy of the sqlite3 connection handed to ``Store._write``'s statements:
    statement number ``fail_at`` (1-based; 0: none) raises ``error`` (default
    InjectedFault) instead of running."""

    def __init__(self, db, fail_at: int, error: BaseException | None = None):
        self.db = db
        self.fail_at = fail_at
        self.error = error
        self.calls = 0

    def _tick(self):
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.error or InjectedFault(f"crash at statement {self.calls}")

    def execute(self, *args):
        self._tick()
        return self.db.execute(*args)

    def executemany(self, *args):
        self._tick()
        return self.db.executemany(*args)


class StatementFaults:
    """Counts every SQL statement a ``Store`` writes through ``Store._write``,
    over every transaction from now on, and makes statement number
    ``fail_at`` (1-based; 0: none) raise ``error``, as a full disk or a locked
    database would. ``remove()`` puts the real writer back."""

    def __init__(self, store, fail_at: int = 0, error: BaseException | None = None):
        self.store = store
        self.proxy = FailingDB(store.db, fail_at, error)
        real_write = store._write
        store._write = lambda statements: real_write(lambda db: statements(self.proxy))

    @property
    def statements(self) -> int:
        return self.proxy.calls

    def remove(self) -> None:
        del self.store._write


def assert_coin_cache_is_the_disk(chain: ChainState) -> None:
    """Every entry the chain's coin cache holds (chain/utxocache.py), a coin
    or a remembered miss, is what SQLite says."""
    for outpoint, coin in list(chain.coins._coins.items()):
        assert chain.store.get_coin(outpoint) == coin, outpoint


def wait_until(condition, timeout: float, what: str):
    """Poll ``condition()`` (for tests of real processes) until it returns a
    true value, which is returned; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def resolve(block: Block) -> Block:
    """Recompute the proof of work after changing a block's header."""
    return Block(solve(block.header), block.txs)


__all__ = ["COIN", "NOW", "Harness", "assert_coin_cache_is_the_disk", "InjectedFault", "FailingDB", "StatementFaults", "wait_until", "make_tx", "spend", "owner", "pub", "secret", "resolve",
           "mine_block", "OutPoint", "Tx", "TxIn", "TxOut", "Coin", "Block"]
