"""Recently used coins in memory, in front of the UTXO set in SQLite.

Every tx the mempool checks reads each of its inputs' coins through
``ChainState.get_coin``; an SQLite SELECT costs 7-23 us per coin (warm in a
tight loop, or in the node's accept path), about half of one signature
check. ``UtxoCache`` keeps the coins that will probably be read next, as
Bitcoin Core's ``CCoinsViewCache`` does, but as a read cache only: SQLite
stays the one copy of record (every change is written there first, by
``chain/storage.py``), so the cache never has anything to flush and may
forget any entry at any time.

What it holds (``outpoint -> Coin``, or ``None`` for "no such coin"):

* the coins created by every block connected (``committed``): the next
  spends of a coin usually come soon after it was made;
* the coins a disconnected block's undo data restores, likewise;
* whatever ``get_coin`` read from SQLite on a miss, found or not;
* not the coins a block spends: ``committed`` drops them, as Core's cache
  drops spent coins on flush. ``get_coins`` (a block's batched read of its
  inputs) answers hits from memory and reads the misses in one SELECT
  without keeping them: the block is about to spend them.

Exactness. An entry is only ever the committed state of its outpoint:
``committed(changes)`` runs after SQLite's COMMIT returned, with the exact
coin diff that was written (made, spent and restored coins); nothing else
changes the UTXO set. A coin made puts its coin in place of any entry
(a remembered "no such coin" included), a coin spent or removed drops its
entry, so remembered misses stay true through connects and reorgs. A write
that raises (a rule failing before COMMIT, a failed statement, a failed
COMMIT) never reaches ``committed``: the cache still matches the file. Reads
happen outside write transactions (a block's reads come before its write
begins), so nothing uncommitted is ever kept. If applying a diff itself
fails half way (an interrupt), the cache empties: empty is always exact.
A restart starts empty. Like the ``Store`` under it, it is used by one
thread at a time (the node's gate, node/gate.py, keeps the event loop and
the validation thread apart).

Bounds. At most ``MAX_CACHED_COINS`` entries, the least recently used
evicted first. Every entry has the same shape (a 32-byte txid, an index,
an amount, a 20-byte owner, a height): about 505 bytes of memory each
with the worst-case values, dictionary share included (tracemalloc, in
tests/test_utxocache.py), at most ``COIN_ENTRY_BYTES`` with a margin, so
the count bounds the bytes to ``MAX_COIN_CACHE_BYTES``: 32 MB, as much as
the mempool's default limit of tx bytes. 50,000 coins are the outputs of
about 12 blocks of 2,000 one-input two-output txs, or the inputs of
50,000 mempool txs; past that the most recently used stay.
Anyone can make us read a coin (an RPC, a relayed tx naming any
outpoint), so anyone can evict entries: the cost is then the SELECT the
node paid before there was a cache, never more.
"""

from collections import OrderedDict

from .coins import Coin
from .storage import Store
from .tx import OutPoint

MAX_COIN_CACHE_BYTES = 32_000_000
COIN_ENTRY_BYTES = 640  # ~505 measured (worst case), and a margin
MAX_CACHED_COINS = MAX_COIN_CACHE_BYTES // COIN_ENTRY_BYTES


class UtxoCache:
    """A bounded LRU of committed coins (and known misses) over a ``Store``;
    a ``BaseView`` (chain/coins.py), so a block's ``CoinCache`` reads through it."""

    def __init__(self, store: Store):
        self.store = store
        self.max_coins = MAX_CACHED_COINS
        self._coins: OrderedDict[OutPoint, Coin | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._coins)

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        """The unspent coin at ``outpoint``, or None; a miss reads SQLite and is kept."""
        coins = self._coins
        if outpoint in coins:
            coins.move_to_end(outpoint)
            return coins[outpoint]
        coin = self.store.get_coin(outpoint)
        coins[outpoint] = coin
        if len(coins) > self.max_coins:
            coins.popitem(last=False)
        return coin

    def get_coins(self, outpoints: list[OutPoint]) -> dict[OutPoint, Coin]:
        """The unspent coins among ``outpoints``: hits from memory, the misses
        in one batched read that is not kept (see the module docstring)."""
        coins = self._coins
        found, missing = {}, []
        for outpoint in outpoints:
            if outpoint in coins:
                coin = coins[outpoint]
                if coin is not None:
                    found[outpoint] = coin
            else:
                missing.append(outpoint)
        if missing:
            found.update(self.store.get_coins(missing))
        return found

    def unspent_txids(self, txids: list[bytes]) -> set[bytes]:
        """BIP30's question goes to SQLite: the cache cannot know every output of a txid."""
        return self.store.unspent_txids(txids)

    def committed(self, changes: dict[OutPoint, Coin | None]) -> None:
        """Apply a coin diff that SQLite has just committed: coins made or
        restored go in (newest), coins spent or removed leave."""
        coins = self._coins
        try:
            for outpoint, coin in changes.items():
                if coin is None:
                    coins.pop(outpoint, None)
                else:
                    coins[outpoint] = coin
                    coins.move_to_end(outpoint)
            while len(coins) > self.max_coins:
                coins.popitem(last=False)
        except BaseException:
            coins.clear()  # a half-applied diff: forget everything rather than be wrong
            raise
