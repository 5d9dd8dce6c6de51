"""Reject codes, the one fault table, and the one exception every rule raises.

A rule either returns or raises ``RuleError(code, message)``:

* ``code`` is one of the keys of ``FAULTS`` (Bitcoin Core's names, see
  PROTOCOL.md section 5), so programs can act on it;
* ``message`` is a sentence for people, with the numbers involved.

What a node *does* about a rejection is decided here, once, in ``FAULTS``,
and nowhere else: no other module compares code strings. Each row says

* ``kind``: ``consensus`` (invalid everywhere), ``policy`` (only this node's
  mempool refuses it) or ``orphan`` (we lack the parent; ask for it);
* ``tx``: what the failure means for a *loose transaction* from a peer;
* ``block``: what it means for a *block or header* from a peer;
* ``rpc``: the JSON-RPC error code a refused submission gets (bitcoind's).

``tx`` and ``block`` are sets of three actions (PROTOCOL.md sections 5, 7):

* ``PUNISH``: the sender broke the protocol: disconnect and ban it. Only
  bytes that do not decode and blocks that break a consensus rule earn it.
  A loose tx that breaks a rule never does: the peer may have seen a
  different chain or mempool than ours (Core's rule too).
* ``REMEMBER``: remember the hash as invalid, so it is not fetched or
  checked again (blocks: for good, and their descendants get
  ``bad-prevblk``; txs: until the tip moves, Core's recent-rejects filter).
  A block whose fault may not be its hash's is never remembered: a mutated
  body (the genuine one may still come, CVE-2012-2459) or a time too far in
  the future (it may become valid).
* ``ORPHAN``: a parent is missing; keep the object aside (bounded) and ask
  for the parent. Neither punished nor remembered.

A header or block whose proof of work was never shown valid (``high-hash``,
or ``bad-diffbits`` from the context-free check) is not remembered whatever
the table says: making one costs nothing, so remembering it would let anyone
fill our memory. That rule lives in ``chain/chainstate.py``.
"""

import enum
from typing import NamedTuple

CONSENSUS = "consensus"
POLICY = "policy"
ORPHAN_KIND = "orphan"


class Act(enum.Flag):
    NONE = 0
    PUNISH = enum.auto()    # disconnect and ban the peer that sent it
    REMEMBER = enum.auto()  # remember the hash as invalid: never fetch or check it again
    ORPHAN = enum.auto()    # a parent is missing: keep it aside and ask for the parent


NONE, PUNISH, REMEMBER, ORPHAN = Act.NONE, Act.PUNISH, Act.REMEMBER, Act.ORPHAN
REJECTED, ALREADY_IN_CHAIN, BAD_ENCODING = -26, -27, -22


class Fault(NamedTuple):
    kind: str
    tx: Act       # a loose tx from a peer that fails this rule
    block: Act    # a block (or header) from a peer that fails this rule
    rpc: int = REJECTED


_TX = REMEMBER              # a loose tx breaking a consensus rule: not fetched again, not punished
_BLOCK = PUNISH | REMEMBER  # a block breaking a consensus rule: invalid for good, sender banned

FAULTS: dict[str, Fault] = {
    # code                                  kind       loose tx  block      rpc
    "bad-encoding":                   Fault(CONSENSUS, PUNISH,   PUNISH,    BAD_ENCODING),
    "bad-txns-version":               Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-vout-empty":            Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-oversize":              Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-vout-negative":         Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-vout-toolarge":         Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-txouttotal-toolarge":   Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-inputs-duplicate":      Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-inputs-missingorspent": Fault(CONSENSUS, ORPHAN,   _BLOCK),
    "bad-txns-premature-spend-of-coinbase": Fault(CONSENSUS, _TX, _BLOCK),
    "bad-txns-inputvalues-outofrange": Fault(CONSENSUS, _TX,     _BLOCK),
    "bad-txns-in-belowout":           Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-nonfinal":              Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-wrong-owner":           Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-bad-signature":         Fault(CONSENSUS, _TX,      _BLOCK),
    "bad-txns-bad-pubkey":            Fault(CONSENSUS, _TX,      _BLOCK),
    "coinbase":                       Fault(CONSENSUS, _TX,      _BLOCK),
    "txn-already-in-mempool":         Fault(POLICY,    NONE,     NONE),
    "txn-already-known":              Fault(POLICY,    REMEMBER, NONE,      ALREADY_IN_CHAIN),
    "txn-mempool-conflict":           Fault(POLICY,    REMEMBER, NONE),
    "min-relay-fee-not-met":          Fault(POLICY,    REMEMBER, NONE),
    "mempool-full":                   Fault(POLICY,    REMEMBER, NONE),
    "too-long-mempool-chain":         Fault(POLICY,    REMEMBER, NONE),
    "high-hash":                      Fault(CONSENSUS, NONE,     PUNISH),
    "bad-version":                    Fault(CONSENSUS, NONE,     _BLOCK),
    "bad-diffbits":                   Fault(CONSENSUS, NONE,     _BLOCK),
    "time-too-old":                   Fault(CONSENSUS, NONE,     _BLOCK),
    "time-too-new":                   Fault(CONSENSUS, NONE,     NONE),     # may become valid: retry later
    "bad-txnmrklroot":                Fault(CONSENSUS, NONE,     NONE),     # mutated in transit
    "bad-txns-duplicate":             Fault(CONSENSUS, NONE,     NONE),     # mutated (CVE-2012-2459)
    "bad-blk-length":                 Fault(CONSENSUS, NONE,     _BLOCK),
    "bad-cb-missing":                 Fault(CONSENSUS, NONE,     _BLOCK),
    "bad-cb-multiple":                Fault(CONSENSUS, NONE,     _BLOCK),
    "bad-cb-height":                  Fault(CONSENSUS, NONE,     _BLOCK),
    "bad-cb-amount":                  Fault(CONSENSUS, NONE,     _BLOCK),
    "bad-txns-BIP30":                 Fault(CONSENSUS, NONE,     _BLOCK),
    "bad-txns-accumulated-fee-outofrange": Fault(CONSENSUS, NONE, _BLOCK),
    "prev-blk-not-found":             Fault(ORPHAN_KIND, NONE,   ORPHAN),
    "bad-prevblk":                    Fault(CONSENSUS, NONE,     _BLOCK),
}

CODES: dict[str, str] = {code: fault.kind for code, fault in FAULTS.items()}


class RuleError(Exception):
    """A transaction or block broke the rule named by ``code``."""

    def __init__(self, code: str, message: str):
        if code not in FAULTS:
            raise ValueError(f"unknown reject code {code!r}")
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")

    @property
    def fault(self) -> Fault:
        return FAULTS[self.code]

    @property
    def kind(self) -> str:
        return self.fault.kind

    def __repr__(self) -> str:
        return f"RuleError({self.code!r}, {self.kind!r}, {self.message!r})"


def bad_encoding(message: str) -> RuleError:
    return RuleError("bad-encoding", message)
