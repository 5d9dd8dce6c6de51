"""Orphan transactions: txs from peers whose parents we do not have yet.

Theory of operation
-------------------
A peer may relay a child before its parent (gossip has no order). Such a tx
is kept aside, with the peer that sent it, and its missing parents are
asked of that peer. Each time a tx is accepted to the mempool or confirmed
in a block, the orphans spending it are tried again (``children_of``): one
that still misses another parent simply stays; it leaves the pool when it
is accepted, when it turns out invalid, when it expires after
``ORPHAN_TX_SECONDS``, when its peer disconnects (Core's EraseForPeer), or
when a block confirms it or spends one of its coins.

Bounded (Core's rules, in bytes as well as count): a tx over
``MAX_ORPHAN_TX_BYTES`` is not kept; the pool holds at most
``MAX_ORPHAN_TXS`` txs and ``MAX_ORPHAN_BYTES`` bytes. To make room, the
oldest orphan of the peer holding the most bytes goes first, so one
flooding peer evicts its own orphans before anybody else's.
"""

from dataclasses import dataclass

from chain.tx import Tx

MAX_ORPHAN_TXS = 100            # Core's DEFAULT_MAX_ORPHAN_TRANSACTIONS
MAX_ORPHAN_TX_BYTES = 100_000   # larger txs are not kept (Core: only standard-size txs, 100 kvB)
MAX_ORPHAN_BYTES = 1_000_000    # all orphans together: about one block's worth
ORPHAN_TX_SECONDS = 20 * 60     # Core's ORPHAN_TX_EXPIRE_TIME


@dataclass
class Orphan:
    tx: Tx
    peer: int
    source: str  # the peer's "host:port", for the node's events and rejects
    expiry: float


class TxOrphanage:
    def __init__(self):
        self.orphans: dict[bytes, Orphan] = {}          # txid -> orphan, oldest first
        self.by_parent: dict[bytes, dict[bytes, None]] = {}  # parent txid -> orphan txids
        self.by_peer: dict[int, dict[bytes, int]] = {}        # peer -> orphan txid -> bytes
        self.bytes = 0

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.orphans

    def __len__(self) -> int:
        return len(self.orphans)

    def add(self, tx: Tx, peer: int, source: str, now: float) -> bool:
        """Keep ``tx`` from ``peer``; False if it is too big to keep."""
        if tx.txid in self.orphans:
            return True
        if tx.size > MAX_ORPHAN_TX_BYTES:
            return False
        self.orphans[tx.txid] = Orphan(tx, peer, source, now + ORPHAN_TX_SECONDS)
        for txin in tx.inputs:
            self.by_parent.setdefault(txin.prev_txid, {})[tx.txid] = None
        self.by_peer.setdefault(peer, {})[tx.txid] = tx.size
        self.bytes += tx.size
        self.expire(now)
        while len(self.orphans) > MAX_ORPHAN_TXS or self.bytes > MAX_ORPHAN_BYTES:
            hungriest = max(self.by_peer, key=lambda p: (sum(self.by_peer[p].values()), p))
            self.remove(next(iter(self.by_peer[hungriest])))
        return tx.txid in self.orphans

    def remove(self, txid: bytes) -> None:
        orphan = self.orphans.pop(txid, None)
        if orphan is None:
            return
        for txin in orphan.tx.inputs:
            children = self.by_parent.get(txin.prev_txid)
            if children is not None:
                children.pop(txid, None)
                if not children:
                    del self.by_parent[txin.prev_txid]
        mine = self.by_peer[orphan.peer]
        del mine[txid]
        if not mine:
            del self.by_peer[orphan.peer]
        self.bytes -= orphan.tx.size

    def children_of(self, txid: bytes) -> list[Orphan]:
        """The orphans spending an output of ``txid`` (they stay until removed)."""
        return [self.orphans[t] for t in self.by_parent.get(txid, ())]

    def remove_peer(self, peer: int) -> None:
        for txid in list(self.by_peer.get(peer, ())):
            self.remove(txid)

    def remove_for_block(self, txs) -> None:
        """Drop orphans a block confirmed, or whose coins it spent."""
        confirmed = {tx.txid for tx in txs}
        spent = {txin.outpoint for tx in txs for txin in tx.inputs}
        for txid in [t for t, o in self.orphans.items()
                     if t in confirmed or any(i.outpoint in spent for i in o.tx.inputs)]:
            self.remove(txid)

    def expire(self, now: float) -> None:
        for txid in [t for t, o in self.orphans.items() if o.expiry <= now]:
            self.remove(txid)

    def limits(self) -> list[tuple[str, int, int]]:
        return [("orphan txs", len(self.orphans), MAX_ORPHAN_TXS),
                ("orphan bytes", self.bytes, MAX_ORPHAN_BYTES)]
