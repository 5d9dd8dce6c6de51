"""Which transactions to ask which peer for.

One request per txid at a time, to the first peer that announced it; the
request is forgotten after ``TX_REQUEST_SECONDS`` or when the tx (or a
``notfound``) arrives, and the txid may then be asked for again.
"""

TX_REQUEST_SECONDS = 30.0


class TxRequests:
    def __init__(self):
        self.asked: dict[bytes, float] = {}  # txid -> when it was requested

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.asked

    def requested(self, txid: bytes, now: float) -> None:
        self.asked[txid] = now

    def received(self, txid: bytes) -> None:
        self.asked.pop(txid, None)

    def expire(self, now: float) -> None:
        for txid in [t for t, asked in self.asked.items() if now - asked > TX_REQUEST_SECONDS]:
            del self.asked[txid]
