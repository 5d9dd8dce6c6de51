"""A cache of signature checks that passed, like Bitcoin Core's CSignatureCache.

A node checks each transaction's signatures when it enters the mempool, and
the same transaction arrives again inside a block moments later. Checking
twice is the most expensive part of relaying a block, so the first success
is remembered. The key is exact: the txid covers the pubkey and signature,
and the sighash depends only on the tx, the input index, the spent coin and
the network magic. Only passes are remembered; a cached key gives the same
answer the check would. The cache is an explicit object owned by the node
(shared by its mempool and block paths), bounded, and safe to use from the
verification threads.
"""

from .coins import Coin
from .tx import Tx

DEFAULT_SIZE = 200_000


class SignatureCache:
    def __init__(self, size: int = DEFAULT_SIZE):
        self.size = size
        self._passed: set[tuple] = set()

    @staticmethod
    def key(tx: Tx, index: int, coin: Coin, magic: bytes) -> tuple:
        return (tx.txid, index, coin.amount, coin.owner, magic)

    def __contains__(self, key: tuple) -> bool:
        return key in self._passed

    def add(self, key: tuple) -> None:
        if len(self._passed) >= self.size:
            self._passed.clear()  # crude but bounded; a miss only costs a re-check
        self._passed.add(key)
