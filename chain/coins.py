"""Coins (unspent outputs), views of them, and the undo data of a block.

A *coin* is an output nobody has spent yet, with the height and kind of the
transaction that made it (coinbase outputs must mature before spending).
The UTXO set is the set of all coins: a balance is just the sum of the coins
an owner can unlock, which is why it can never be negative.

Rules read coins through a *view*: anything with ``get_coin(outpoint)`` (the
chain's ``Store``, the mempool's view of the next block). ``CoinCache`` layers
the changes of a block being connected over a base view, so rules see earlier
transactions of the same block, and nothing reaches the base until the whole
block passed; ``changes()`` is then the exact diff to write. Its base must
also answer ``any_unspent(txid, count)`` (the BIP30 check of
``connect_block``) in one lookup: the ``Store``, or ``EmptyView`` for genesis.
Disconnecting a block reads no coins: ``disconnect_changes`` makes its diff
from the block and its undo data.
"""

from typing import NamedTuple, Protocol

from .encoding import Reader, i64, u32, varint
from .tx import OutPoint, Tx, TxOut


class Coin(NamedTuple):
    amount: int
    owner: bytes
    height: int
    coinbase: bool

    @property
    def txout(self) -> TxOut:
        return TxOut(self.amount, self.owner)


class CoinView(Protocol):
    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...


class BaseView(CoinView, Protocol):
    """What a ``CoinCache`` layers over: a view that also says whether any
    of the first ``count`` outputs of ``txid`` is unspent."""

    def any_unspent(self, txid: bytes, count: int) -> bool: ...


class EmptyView:
    """No coins at all (the state before genesis)."""

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return None

    def any_unspent(self, txid: bytes, count: int) -> bool:
        return False


class CoinCache:
    """Pending changes over a base view: ``None`` marks a coin spent here."""

    def __init__(self, base: BaseView):
        self.base = base
        self._changed: dict[OutPoint, Coin | None] = {}
        self._read: dict[OutPoint, Coin | None] = {}  # base lookups, each done once

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        if outpoint in self._changed:
            return self._changed[outpoint]
        if outpoint not in self._read:
            self._read[outpoint] = self.base.get_coin(outpoint)
        return self._read[outpoint]

    def any_unspent(self, txid: bytes, count: int) -> bool:
        if not self.base.any_unspent(txid, count):  # one lookup for the common case
            return any(self._changed.get(OutPoint(txid, i)) is not None for i in range(count))
        for index in range(count):
            outpoint = OutPoint(txid, index)
            if outpoint in self._changed:
                if self._changed[outpoint] is not None:
                    return True
            elif self.base.get_coin(outpoint) is not None:
                return True
        return False

    def spend(self, outpoint: OutPoint) -> Coin | None:
        coin = self.get_coin(outpoint)
        if coin is not None:
            self._changed[outpoint] = None
        return coin

    def add_outputs(self, tx: Tx, height: int) -> None:
        txid, coinbase = tx.txid, tx.is_coinbase
        for index, out in enumerate(tx.outputs):
            self._changed[OutPoint(txid, index)] = Coin(out.amount, out.owner, height, coinbase)

    def changes(self) -> dict[OutPoint, Coin | None]:
        return dict(self._changed)


# -- undo data: the coins a block spent, in spending order ---------------------

def disconnect_changes(txs: list[Tx],
                       spent: list[tuple[OutPoint, Coin]]) -> dict[OutPoint, Coin | None]:
    """The coin changes that undo a block of ``txs`` whose connect spent ``spent``
    (its undo data): last tx first, its outputs removed and the coins it spent
    restored, so an output made and spent inside the block ends up absent."""
    changes: dict[OutPoint, Coin | None] = {}
    cursor = len(spent)
    for tx in reversed(txs):
        for index in range(len(tx.outputs)):
            changes[OutPoint(tx.txid, index)] = None
        for outpoint, coin in spent[cursor - len(tx.inputs):cursor]:
            changes[outpoint] = coin
        cursor -= len(tx.inputs)
    return changes


def encode_undo(spent: list[tuple[OutPoint, Coin]]) -> bytes:
    parts = [varint(len(spent))]
    for outpoint, coin in spent:
        parts.append(outpoint.txid + u32(outpoint.index) + i64(coin.amount) + coin.owner
                     + u32(coin.height) + bytes((int(coin.coinbase),)))
    return b"".join(parts)


def decode_undo(data: bytes) -> list[tuple[OutPoint, Coin]]:
    reader = Reader(data)
    spent = []
    for _ in range(reader.count(69, "undo entry")):
        outpoint = OutPoint(reader.read(32), reader.u32())
        coin = Coin(reader.i64(), reader.read(20), reader.u32(), reader.read(1) == b"\x01")
        spent.append((outpoint, coin))
    reader.finish()
    return spent
