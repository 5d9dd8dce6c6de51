"""What ``getrecentrejects`` answers: the node's last refusals, newest first,
with the bytes of the refused transactions it still holds.

A refusal is a dict of PROTOCOL.md's fields (time, kind, id, reject_reason,
message, source). So that a refusal can be explained afterwards
(``explaintransaction`` needs the transaction, and a node keeps a refused
one nowhere else), a refused tx's raw bytes are kept beside its entry and
listed as an extra field ``hex`` (extra fields are allowed; docs/
protocol-notes.md). Blocks are not kept: only a transaction has a trace.

Two bounds, each reached by a test: at most ``MAX_RECENT_REJECTS`` entries
(the oldest goes), and at most ``MAX_REJECTED_TX_BYTES`` bytes of kept
transactions (the oldest kept bytes go first; their entry stays, without
``hex``). A tx larger than the whole byte bound is never kept. Whoever sends
refused txs can only replace what is kept, never grow it.
"""

from collections import deque

MAX_RECENT_REJECTS = 100  # getrecentrejects shows the last 100 refusals: enough to see an attack
MAX_REJECTED_TX_BYTES = 1_000_000  # one block's worth: a tx of any valid size fits alone


class RecentRejects:
    """The last refusals, newest first, and the bytes of the refused txs among them."""

    def __init__(self, max_entries: int = MAX_RECENT_REJECTS, max_bytes: int = MAX_REJECTED_TX_BYTES):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0  # raw bytes kept now
        self._entries: deque[list] = deque()  # [entry, raw or None], newest first
        self._kept: deque[list] = deque()     # the records whose raw is kept, newest first

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: dict, raw: bytes | None = None) -> None:
        """Record a refusal, newest; ``raw``: the refused tx's bytes, kept while they fit."""
        record = [entry, raw if raw is not None and len(raw) <= self.max_bytes else None]
        self._entries.appendleft(record)
        if record[1] is not None:
            self._kept.appendleft(record)
            self.bytes += len(record[1])
        if len(self._entries) > self.max_entries:
            self._drop_bytes(self._entries.pop())
        while self.bytes > self.max_bytes:
            self._drop_bytes(self._kept[-1])

    def _drop_bytes(self, record: list) -> None:
        if record[1] is not None:  # the oldest kept record: kept records are in entry order
            self._kept.pop()
            self.bytes -= len(record[1])
            record[1] = None

    def entries(self) -> list[dict]:
        """Newest first; a tx whose bytes are kept has them as ``hex``."""
        return [dict(entry) if raw is None else {**entry, "hex": raw.hex()} for entry, raw in self._entries]
