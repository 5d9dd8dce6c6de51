"""Orphan transactions: txs from peers whose inputs we do not know yet.

At most ``MAX_ORPHAN_TXS``, oldest out first, each kept ``ORPHAN_TX_SECONDS``.
When a tx is accepted, the orphans spending it are taken out and retried.
"""

from collections import OrderedDict

from chain.tx import Tx

MAX_ORPHAN_TXS = 100
ORPHAN_TX_SECONDS = 20 * 60


class TxOrphanage:
    def __init__(self):
        self.orphans: OrderedDict[bytes, tuple[Tx, float, str]] = OrderedDict()

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.orphans

    def __len__(self) -> int:
        return len(self.orphans)

    def add(self, tx: Tx, source: str, now: float) -> None:
        self.orphans[tx.txid] = (tx, now, source)
        for txid in [t for t, (_, seen, _) in self.orphans.items() if now - seen > ORPHAN_TX_SECONDS]:
            del self.orphans[txid]
        while len(self.orphans) > MAX_ORPHAN_TXS:
            self.orphans.popitem(last=False)

    def take_children(self, txid: bytes) -> list[tuple[Tx, str]]:
        """Remove and return the orphans that spend an output of ``txid``."""
        ready = [(t, tx, src) for t, (tx, _, src) in self.orphans.items()
                 if any(txin.prev_txid == txid for txin in tx.inputs)]
        for t, _, _ in ready:
            del self.orphans[t]
        return [(tx, src) for _, tx, src in ready]
