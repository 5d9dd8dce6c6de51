"""The cost of the signature hash (chain/tx.py): linear in the size of a tx
plus its inputs on the paths that run (the mempool's check and a block's
connect). Its bytes are checked against the plain definition of PROTOCOL.md
section 3 in tests/test_formats.py.

The cost is checked by counting the bytes fed to SHA-256, not by a timer:
hashing each input's digest from scratch feeds size x inputs bytes.
"""

import hashlib

from chain.amounts import COIN
from chain.coins import Coin
from chain.params import REGTEST
from chain.tx import OutPoint, Tx
from node.mempool import Mempool

from .helpers import Harness, make_tx, owner


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
