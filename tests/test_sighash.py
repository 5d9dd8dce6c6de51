"""The signature hash (chain/tx.py): byte-identical to the plain definition of
PROTOCOL.md section 3, and linear in the size of a tx plus its inputs on the
paths that run (the mempool's check and a block's connect).

The linear cost is checked by counting the bytes fed to SHA-256, not by a
timer: hashing each input's digest from scratch feeds size x inputs bytes.
"""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from chain.amounts import COIN
from chain.coins import Coin
from chain.encoding import i64, u32, varint
from chain.params import DEVNET, REGTEST
from chain.tx import OutPoint, Tx, TxIn, TxOut
from node.mempool import Mempool

from .helpers import Harness, make_tx, owner


def plain_sighash(tx: Tx, index: int, spent: TxOut, magic: bytes) -> bytes:
    """PROTOCOL.md section 3, written out: sha256d(magic | tx bytes with every
    signature set to 64 zero bytes | i:u32 | spent.amount:i64 | spent.owner:20)."""
    blanked = u32(tx.version) + varint(len(tx.inputs))
    for txin in tx.inputs:
        blanked += txin.prev_txid + u32(txin.prev_index) + txin.pubkey + bytes(64)
    blanked += varint(len(tx.outputs))
    for txout in tx.outputs:
        blanked += i64(txout.amount) + txout.owner
    blanked += u32(tx.locktime)
    data = magic + blanked + u32(index) + i64(spent.amount) + spent.owner
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


txins = st.builds(TxIn, st.binary(min_size=32, max_size=32), st.integers(0, 2 ** 32 - 1),
                  st.binary(min_size=33, max_size=33), st.binary(min_size=64, max_size=64))
txouts = st.builds(TxOut, st.integers(-2 ** 63, 2 ** 63 - 1), st.binary(min_size=20, max_size=20))
txs = st.builds(Tx, st.integers(0, 2 ** 32 - 1), st.lists(txins, min_size=1, max_size=8).map(tuple),
                st.lists(txouts, max_size=5).map(tuple), st.integers(0, 2 ** 32 - 1))


@settings(max_examples=150, deadline=None)
@given(tx=txs, spent=st.lists(txouts, min_size=8, max_size=8), data=st.data())
def test_sighash_equals_the_plain_definition(tx, spent, data):
    order = data.draw(st.permutations(range(len(tx.inputs))))  # any order: the cache must not leak
    for index in order:
        for net in (REGTEST, DEVNET):
            assert tx.sighash(index, spent[index], net.magic) == \
                plain_sighash(tx, index, spent[index], net.magic)
    decoded = Tx.decode(tx.raw)  # a decoded copy hashes the same
    assert [decoded.sighash(i, spent[i], DEVNET.magic) for i in range(len(tx.inputs))] == \
        [plain_sighash(tx, i, spent[i], DEVNET.magic) for i in range(len(tx.inputs))]


class CountingSha256:
    """Stands in for hashlib.sha256 and adds up every byte it is fed."""
    fed = 0

    def __init__(self, data: bytes = b"", state=None):
        self._state = state if state is not None else hashlib.new("sha256")
        self.update(data)

    def update(self, data: bytes) -> None:
        CountingSha256.fed += len(data)
        self._state.update(data)

    def copy(self) -> "CountingSha256":
        return CountingSha256(state=self._state.copy())

    def digest(self) -> bytes:
        return self._state.digest()


def many_input_tx(h: Harness, n_inputs: int) -> Tx:
    """A signed tx spending ``n_inputs`` confirmed coins of alice (one fan-out tx)."""
    h.mine_empty(11)  # the genesis coin matures
    genesis = REGTEST.genesis.txs[0]
    coin = (OutPoint(genesis.txid, 0), Coin(genesis.outputs[0].amount, owner("alice"), 0, True))
    each = (coin[1].amount - COIN) // n_inputs
    fanout = make_tx([coin], "alice", [("alice", each)] * n_inputs)
    assert h.mine([fanout], fees=coin[1].amount - each * n_inputs).status == "connected"
    coins = [(OutPoint(fanout.txid, i), Coin(each, owner("alice"), h.tip.height, False))
             for i in range(n_inputs)]
    return make_tx(coins, "alice", [("bob", each * n_inputs - COIN)])


def test_checking_a_tx_hashes_its_size_plus_its_inputs(monkeypatch):
    """Mempool.check (what sendrawtransaction and relay run) and the block
    connect both hash about the tx's size once, not once per input."""
    n = 300
    h = Harness()
    tx = Tx.decode(many_input_tx(h, n).raw)  # fresh object: nothing cached yet
    linear = 4 * tx.size + 128 * n  # txid, prefix, 2 x 68 bytes per input
    assert tx.size * n > 20 * linear  # the quadratic cost would be far above the bound

    monkeypatch.setattr(hashlib, "sha256", CountingSha256)
    CountingSha256.fed = 0
    fee, _, _ = Mempool(h.chain).check(tx)
    assert fee == COIN
    assert CountingSha256.fed <= linear, (CountingSha256.fed, linear)

    block = h.block([Tx.decode(tx.raw)], fees=fee)
    block = type(block).decode(block.raw)
    CountingSha256.fed = 0
    assert h.chain.process_block(block).status == "connected"
    assert CountingSha256.fed <= linear + 4 * block.size, (CountingSha256.fed, linear)
