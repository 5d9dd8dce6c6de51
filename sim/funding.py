"""The funded regtest chain every simulated node starts from.

Built once per process with the real chain code: ten empty blocks paying
alice, so that the genesis coin matures, then block 11 holding one tx that
splits alice's 50 TOY genesis coin into ``COINS`` coins of one TOY each (less
the fee), all alice's. Those coins are spendable at once by the scenarios
(``FUNDS``). Each node gets its own in-memory SQLite copy (``chain_copy``),
so starting twenty nodes costs twenty file copies, not twenty chains.
"""

from functools import lru_cache

from chain.amounts import COIN
from chain.chainstate import ChainState
from chain.keys import demo_private_key, owner_of, public_key
from chain.mining import mine_block, sign_tx
from chain.params import GENESIS_TIME, REGTEST
from chain.storage import Store
from chain.tx import OutPoint, Tx, TxIn, TxOut

COINS = 48
FANOUT_FEE = 2 * COIN
SPACING = 60  # seconds between the template's blocks


@lru_cache(maxsize=None)
def owner(name: str) -> bytes:
    return owner_of(public_key(demo_private_key(name)))


def pay(coin: tuple[OutPoint, TxOut], signer: str, to: str, fee: int) -> Tx:
    """Spend one coin of ``signer``: all of it but ``fee`` to ``to``."""
    outpoint, spent = coin
    unsigned = Tx(1, (TxIn(outpoint.txid, outpoint.index, public_key(demo_private_key(signer)),
                           bytes(64)),), (TxOut(spent.amount - fee, owner(to)),), 0)
    return sign_tx(unsigned, [demo_private_key(signer)], [spent], REGTEST.magic)


def spend_outputs(parents: list[Tx], signer: str, to: str = "alice", fee: int = 1_000) -> Tx:
    """One tx of ``signer`` spending output 0 of every tx in ``parents``."""
    key = demo_private_key(signer)
    spent = [p.outputs[0] for p in parents]
    unsigned = Tx(1, tuple(TxIn(p.txid, 0, public_key(key), bytes(64)) for p in parents),
                  (TxOut(sum(o.amount for o in spent) - fee, owner(to)),), 0)
    return sign_tx(unsigned, [key] * len(parents), spent, REGTEST.magic)


def big_orphan(n: int, outputs: int = 3_000) -> Tx:
    """An unsigned tx of about 90 kB spending output ``n`` of a tx nobody has."""
    return Tx(1, (TxIn(bytes([n % 256]) * 32, n, public_key(demo_private_key("mallory")), bytes(64)),),
              tuple(TxOut(1, owner("mallory")) for _ in range(outputs)), 0)


@lru_cache(maxsize=1)
def _template() -> tuple[Store, tuple]:
    store = Store()
    chain = ChainState(REGTEST, store, clock=lambda: GENESIS_TIME + 100 * SPACING)
    alice = owner("alice")

    def mine(txs: list[Tx], fees: int = 0) -> None:
        tip = chain.tip
        block = mine_block(tip.hash, tip.height + 1, chain.next_required_bits(tip),
                           GENESIS_TIME + (tip.height + 1) * SPACING, txs,
                           [TxOut(REGTEST.subsidy(tip.height + 1) + fees, alice)])
        assert chain.process_block(block).status == "connected"
    for _ in range(10):
        mine([])
    genesis_coin = (OutPoint(REGTEST.genesis.txs[0].txid, 0), REGTEST.genesis.txs[0].outputs[0])
    each = (genesis_coin[1].amount - FANOUT_FEE) // COINS
    unsigned = Tx(1, (TxIn(genesis_coin[0].txid, 0, public_key(demo_private_key("alice")), bytes(64)),),
                  tuple(TxOut(each, alice) for _ in range(COINS)), 0)
    fanout = sign_tx(unsigned, [demo_private_key("alice")], [genesis_coin[1]], REGTEST.magic)
    mine([fanout], FANOUT_FEE)
    funds = tuple((OutPoint(fanout.txid, i), out) for i, out in enumerate(fanout.outputs))
    return store, funds


def chain_copy() -> Store:
    """A fresh in-memory store holding the funded chain."""
    template, _ = _template()
    store = Store()
    template.db.backup(store.db)
    return store


def funds() -> tuple[tuple[OutPoint, TxOut], ...]:
    """Alice's spendable one-TOY coins, confirmed at height 11."""
    return _template()[1]


FUNDED_HEIGHT = 11
