"""Reject codes and the one exception every rule raises.

A rule either returns or raises ``RuleError(code, kind, message)``:

* ``code`` is one of the strings in ``CODES`` (Bitcoin Core's names, see
  PROTOCOL.md section 5), so programs can act on it;
* ``kind`` says who may act on it: ``consensus`` (invalid everywhere, a peer
  that sends it misbehaved), ``policy`` (only this node's mempool refuses it)
  or ``orphan`` (we lack the parent; ask for it, punish nobody);
* ``message`` is a sentence for people, with the numbers involved.

Callers decide what to do (punish, cache as invalid, retry) from ``code`` and
``kind``, never by parsing the message.
"""

CONSENSUS = "consensus"
POLICY = "policy"
ORPHAN = "orphan"

CODES: dict[str, str] = {
    "bad-encoding": CONSENSUS,
    "bad-txns-version": CONSENSUS,
    "bad-txns-vout-empty": CONSENSUS,
    "bad-txns-oversize": CONSENSUS,
    "bad-txns-vout-negative": CONSENSUS,
    "bad-txns-vout-toolarge": CONSENSUS,
    "bad-txns-txouttotal-toolarge": CONSENSUS,
    "bad-txns-inputs-duplicate": CONSENSUS,
    "bad-txns-inputs-missingorspent": CONSENSUS,
    "bad-txns-premature-spend-of-coinbase": CONSENSUS,
    "bad-txns-inputvalues-outofrange": CONSENSUS,
    "bad-txns-in-belowout": CONSENSUS,
    "bad-txns-nonfinal": CONSENSUS,
    "bad-txns-wrong-owner": CONSENSUS,
    "bad-txns-bad-signature": CONSENSUS,
    "bad-txns-bad-pubkey": CONSENSUS,
    "coinbase": CONSENSUS,
    "txn-already-in-mempool": POLICY,
    "txn-already-known": POLICY,
    "txn-mempool-conflict": POLICY,
    "min-relay-fee-not-met": POLICY,
    "mempool-full": POLICY,
    "too-long-mempool-chain": POLICY,
    "high-hash": CONSENSUS,
    "bad-version": CONSENSUS,
    "bad-diffbits": CONSENSUS,
    "time-too-old": CONSENSUS,
    "time-too-new": CONSENSUS,
    "bad-txnmrklroot": CONSENSUS,
    "bad-txns-duplicate": CONSENSUS,
    "bad-blk-length": CONSENSUS,
    "bad-cb-missing": CONSENSUS,
    "bad-cb-multiple": CONSENSUS,
    "bad-cb-height": CONSENSUS,
    "bad-cb-amount": CONSENSUS,
    "bad-txns-BIP30": CONSENSUS,
    "bad-txns-accumulated-fee-outofrange": CONSENSUS,
    "prev-blk-not-found": ORPHAN,
    "bad-prevblk": CONSENSUS,
}

# Block rejections that say nothing about the block hash itself: the same
# header may still arrive with the genuine body (mutation, CVE-2012-2459), or
# become valid later (clock), or carry no proof of work worth remembering.
NOT_CACHED_AS_INVALID = frozenset(
    {"bad-txnmrklroot", "bad-txns-duplicate", "time-too-new", "high-hash",
     "bad-encoding", "prev-blk-not-found"}
)


class RuleError(Exception):
    """A transaction or block broke the rule named by ``code``."""

    def __init__(self, code: str, message: str, kind: str | None = None):
        if code not in CODES:
            raise ValueError(f"unknown reject code {code!r}")
        self.code = code
        self.kind = kind or CODES[code]
        self.message = message
        super().__init__(f"{code}: {message}")

    def __repr__(self) -> str:
        return f"RuleError({self.code!r}, {self.kind!r}, {self.message!r})"


def bad_encoding(message: str) -> RuleError:
    return RuleError("bad-encoding", message)
