"""Coins (unspent outputs), views of them, and the undo data of a block.

A *coin* is an output nobody has spent yet, with the height and kind of the
transaction that made it (coinbase outputs must mature before spending).
The UTXO set is the set of all coins: a balance is just the sum of the coins
an owner can unlock, which is why it can never be negative.

Rules read coins through a *view*: anything with ``get_coin(outpoint)`` (the
chain's coin cache over its ``Store``, the mempool's view of the next block). ``CoinCache`` layers
the changes of a block being connected over a base view, so rules see earlier
transactions of the same block, and nothing reaches the base until the whole
block passed; ``changes()`` is then the exact diff to write. Its base also
answers for many at once (``get_coins`` and ``unspent_txids``, the latter for
the BIP30 check of ``connect_block``): the chain's ``UtxoCache``
(chain/utxocache.py), from memory where it can and otherwise from the
``Store`` in a few SELECTs per block, or ``EmptyView`` for genesis. ``CoinCache.prefetch`` asks it once for a
whole block, before the rules run tx by tx.
Disconnecting a block reads no coins: ``disconnect_changes`` makes its diff
from the block and its undo data.
"""

import struct
from typing import NamedTuple, Protocol

from .encoding import Reader, varint
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
    """What a ``CoinCache`` layers over: a view that also reads many coins at
    once, and says which of many txids have an unspent output."""

    def get_coins(self, outpoints: list[OutPoint]) -> dict[OutPoint, Coin]: ...

    def unspent_txids(self, txids: list[bytes]) -> set[bytes]: ...


class EmptyView:
    """No coins at all (the state before genesis)."""

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return None

    def get_coins(self, outpoints: list[OutPoint]) -> dict[OutPoint, Coin]:
        return {}

    def unspent_txids(self, txids: list[bytes]) -> set[bytes]:
        return set()


class CoinCache:
    """Pending changes over a base view: ``None`` marks a coin spent here."""

    def __init__(self, base: BaseView):
        self.base = base
        self._changed: dict[OutPoint, Coin | None] = {}
        self._read: dict[OutPoint, Coin | None] = {}  # what prefetch read
        self._has_unspent: dict[bytes, bool] = {}  # txid -> has an unspent output in the base
        self._made: set[bytes] = set()  # txids whose outputs add_outputs added here

    def prefetch(self, outpoints: list[OutPoint], txids: list[bytes]) -> None:
        """Read the coins of ``outpoints`` and whether each of ``txids`` has an
        unspent output from the base, in a few requests (a block's inputs and
        txids, before its rules run). The view answers for these only."""
        found = self.base.get_coins(outpoints)
        self._read = {outpoint: found.get(outpoint) for outpoint in outpoints}
        unspent = self.base.unspent_txids(txids)
        self._has_unspent = {txid: txid in unspent for txid in txids}

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        """The coin at ``outpoint`` (made in this block, or one given to ``prefetch``)."""
        if outpoint in self._changed:
            return self._changed[outpoint]
        return self._read[outpoint]

    def any_unspent(self, txid: bytes, count: int) -> bool:
        """Is any of the first ``count`` outputs of ``txid`` (a txid given to
        ``prefetch``) unspent?"""
        if not self._has_unspent[txid]:  # the common case: no base lookup per output
            if txid not in self._made:  # nor any output made here
                return False
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
        self._made.add(txid)
        for index, out in enumerate(tx.outputs):
            self._changed[OutPoint(txid, index)] = Coin(out.amount, out.owner, height, coinbase)

    def changes(self) -> dict[OutPoint, Coin | None]:
        return dict(self._changed)


# -- undo data: the coins a block spent, in spending order ---------------------

# txid | index:u32 | amount:i64 | owner | height:u32 | coinbase:u8 (69 bytes)
_UNDO_ENTRY = struct.Struct("<32sIq20sIB")

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
    pack = _UNDO_ENTRY.pack
    return varint(len(spent)) + b"".join([pack(outpoint.txid, outpoint.index, coin.amount,
                                               coin.owner, coin.height, coin.coinbase)
                                          for outpoint, coin in spent])


def decode_undo(data: bytes) -> list[tuple[OutPoint, Coin]]:
    reader = Reader(data)
    entries = reader.read(reader.count(_UNDO_ENTRY.size, "undo entry") * _UNDO_ENTRY.size)
    reader.finish()
    return [(OutPoint(txid, index), Coin(amount, owner, height, coinbase == 1))
            for txid, index, amount, owner, height, coinbase in _UNDO_ENTRY.iter_unpack(entries)]
