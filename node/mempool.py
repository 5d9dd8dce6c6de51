"""The mempool: transactions waiting for a block, checked like a block would.

A transaction is accepted by running the consensus rules of ``chain.tx_rules``
(the very functions the block path calls) against a *view* of the coins as
they will be in the next block: the UTXO set, minus coins already spent by
the mempool, plus the outputs of mempool transactions. Policy checks sit
between them, in Bitcoin Core's order:

    check_transaction, coinbase, final at tip+1            (consensus)
    already in mempool, conflict, already confirmed       (policy)
    inputs exist, maturity, value ranges, inputs >= outputs (consensus)
    minimum fee rate, chain length, size limit            (policy)
    every input's pubkey, owner and signature             (consensus)

"Already confirmed" is an index lookup that can only succeed for a tx with
a spent input, so outside a trace it runs only when an input is missing
(Core's order): a tx it would refuse is refused with the same code.

First seen wins: a tx spending a coin that a mempool tx already spends is
refused (``txn-mempool-conflict``), whatever its fee; there is no
replacement. When the pool is full, a tx may evict the lowest fee-rate
transactions (with their descendants) only if it pays a higher rate.

``check`` takes an optional ``trace`` (chain/trace.py), handed on to every
rule function, and records the policy steps itself: that is how
``explaintransaction`` shows each comparison of the check it really runs.

The mempool is pure state, no I/O: the node calls it and turns what it
returns into gossip and events.
"""

import heapq
import math
from decimal import Decimal
from fractions import Fraction
import time as _time
from dataclasses import dataclass, field

from chain.amounts import format_toy
from chain.block import Block
from chain.chainstate import ChainState
from chain.coins import Coin
from chain.errors import RuleError
from chain.sigcache import SignatureCache
from chain.trace import Trace, rejection
from chain.tx import OutPoint, Tx
from chain.tx_rules import (check_authorizations, check_final, check_not_coinbase,
                            check_transaction, check_tx_inputs, find_spent_coins)

MAX_CHAIN = 25
DEFAULT_MAX_BYTES = 32_000_000
DEFAULT_MIN_FEE_RATE = 1  # units per byte
EXPIRY_SECONDS = 14 * 24 * 3600

# The policy rules in words, as a trace shows them (chain/trace.py).
IN_MEMPOOL = "not already in the mempool"
NO_CONFLICT = "no coin already spent by a mempool transaction (first seen wins)"
NOT_CONFIRMED = "not already confirmed"
MIN_FEE = "fee at least the node's minimum fee rate times the size"
CHAIN_LIMIT = f"at most {MAX_CHAIN} unconfirmed transactions in a chain, this one included"
ROOM = "room in the mempool, or a higher fee rate than the transactions it would evict"


@dataclass
class Entry:
    tx: Tx
    fee: int
    time: float
    parents: set[bytes] = field(default_factory=set)   # mempool txids it spends from
    children: set[bytes] = field(default_factory=set)

    @property
    def size(self) -> int:
        return self.tx.size

    @property
    def rate(self) -> Fraction:
        """Fee rate in units per byte, exact (no floats near money)."""
        return Fraction(self.fee, self.size)

    def rate_below(self, other_fee: int, other_size: int) -> bool:
        """Is this entry's fee rate strictly lower than other_fee / other_size?"""
        return self.fee * other_size < other_fee * self.size


class Mempool:
    def __init__(self, chain: ChainState, min_fee_rate: int = DEFAULT_MIN_FEE_RATE,
                 max_bytes: int = DEFAULT_MAX_BYTES, clock=_time.time,
                 sigcache: SignatureCache | None = None):
        self.chain = chain
        self.sigcache = sigcache
        self.min_fee_rate = min_fee_rate
        self.max_bytes = max_bytes
        self.clock = clock
        self.entries: dict[bytes, Entry] = {}
        self.spends: dict[OutPoint, bytes] = {}   # outpoint -> txid of the mempool tx spending it
        self.bytes = 0
        self.oldest = math.inf  # no entry arrived before this time (``expire`` looks only when due)

    # -- the coin view of the next block ----------------------------------------------
    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        if outpoint in self.spends:
            return None
        parent = self.entries.get(outpoint.txid)
        if parent is not None:
            outputs = parent.tx.outputs
            if outpoint.index >= len(outputs):
                return None
            out = outputs[outpoint.index]
            return Coin(out.amount, out.owner, self.chain.height + 1, False)
        return self.chain.get_coin(outpoint)

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, txid: bytes) -> Tx | None:
        entry = self.entries.get(txid)
        return entry.tx if entry else None

    # -- acceptance ------------------------------------------------------------------------
    def accept(self, tx: Tx, time: float | None = None) -> tuple[int, list[Tx]]:
        """Add ``tx`` or raise RuleError. Returns (fee, txs evicted to make room).
        ``time`` keeps the original arrival time of a tx put back after a reorg."""
        fee, parents, evict = self.check(tx)
        evicted: list[Tx] = []
        for victim in evict:
            self._remove_with_descendants(victim, evicted)
        self._add(Entry(tx, fee, self.clock() if time is None else time, parents))
        return fee, evicted

    def check(self, tx: Tx, trace: Trace | None = None) -> tuple[int, set[bytes], list[bytes]]:
        """Every check of ``accept`` without changing anything: returns the fee,
        the mempool parents and the txids that would be evicted; or RuleError.
        With a ``trace`` (chain/trace.py) every step is recorded, the policy
        steps here, and every signature is verified again (the signature cache
        is neither read nor filled), so that each one shows."""
        net = self.chain.net
        height = self.chain.height + 1
        check_transaction(tx, trace)
        check_not_coinbase(tx, trace)
        check_final(tx, height, trace)
        txid = tx.txid
        if txid in self.entries:
            raise rejection(trace, IN_MEMPOOL, Mempool.check, {"txid": txid, "in_mempool": True},
                            "txn-already-in-mempool", f"tx {txid.hex()} is already in the mempool")
        if trace is not None:
            trace.passed(IN_MEMPOOL, Mempool.check, {"txid": txid, "in_mempool": False})
        for index, txin in enumerate(tx.inputs):
            other = self.spends.get(txin.outpoint)
            if other is not None:
                raise rejection(trace, NO_CONFLICT, Mempool.check,
                                {"input": index, "coin": txin.outpoint, "spent_by": other},
                                "txn-mempool-conflict",
                                f"input {index} spends {txin.outpoint}, already spent by mempool "
                                f"tx {other.hex()} (first seen wins)")
        if trace is not None:
            trace.passed(NO_CONFLICT, Mempool.check, {"inputs": len(tx.inputs)})
        if trace is not None:
            self._check_not_confirmed(txid, trace)
        try:
            spent = find_spent_coins(tx, self, trace)
        except RuleError:
            if trace is None:  # with a trace it ran above, in the order the rules are listed
                self._check_not_confirmed(txid)
            raise
        fee = check_tx_inputs(tx, spent, height, net, trace)
        if fee < self.min_fee_rate * tx.size:
            raise rejection(trace, MIN_FEE, Mempool.check, self._fee_values(fee, tx),
                            "min-relay-fee-not-met",
                            f"fee {format_toy(fee)} < {self.min_fee_rate} units/byte x {tx.size} "
                            f"bytes = {format_toy(self.min_fee_rate * tx.size)}")
        if trace is not None:
            trace.passed(MIN_FEE, Mempool.check, self._fee_values(fee, tx))
        parents = {txin.prev_txid for txin in tx.inputs if txin.prev_txid in self.entries}
        ancestors = self._ancestors(parents)
        self._check_chain_limit(ancestors, trace)
        evict = self._room_for(fee, tx.size, ancestors, trace)
        check_authorizations(tx, spent, net.magic, self.sigcache if trace is None else None, trace)
        return fee, parents, evict

    def _check_not_confirmed(self, txid: bytes, trace: Trace | None = None) -> None:
        """``txn-already-known`` if the chain holds ``txid``. A confirmed tx's
        inputs are spent, so without a trace this index lookup runs only once
        an input is found missing (as Core's PreChecks do): one SELECT less
        per accepted tx, and the same verdict."""
        if self.chain.store.tx_location(txid) is not None:
            raise rejection(trace, NOT_CONFIRMED, Mempool.check, {"txid": txid, "confirmed": True},
                            "txn-already-known", f"tx {txid.hex()} is already confirmed")
        if trace is not None:
            trace.passed(NOT_CONFIRMED, Mempool.check, {"txid": txid, "confirmed": False})

    def _fee_values(self, fee: int, tx: Tx) -> dict:
        """What the fee rule compares (a trace's values)."""
        return {"fee": fee, "size": tx.size, "min_fee_rate": self.min_fee_rate,
                "min_fee": self.min_fee_rate * tx.size}

    def _reachable(self, start, edge: str) -> set[bytes]:
        """Txids reachable from ``start`` along ``edge`` ("parents" or "children")."""
        seen, todo = set(), list(start)
        while todo:
            txid = todo.pop()
            if txid not in seen:
                seen.add(txid)
                todo += getattr(self.entries[txid], edge)
        return seen

    def _ancestors(self, parents: set[bytes]) -> set[bytes]:
        return self._reachable(parents, "parents")

    def _descendants(self, txid: bytes) -> set[bytes]:
        return self._reachable(self.entries[txid].children, "children")

    def _check_chain_limit(self, ancestors: set[bytes], trace: Trace | None = None) -> None:
        if len(ancestors) + 1 > MAX_CHAIN:
            raise rejection(trace, CHAIN_LIMIT, Mempool.check,
                            {"ancestors": len(ancestors), "limit": MAX_CHAIN},
                            "too-long-mempool-chain",
                            f"{len(ancestors)} unconfirmed ancestors + this tx > {MAX_CHAIN}")
        largest = 0  # the most descendants an ancestor would have
        for ancestor in ancestors:
            family = len(self._descendants(ancestor)) + 2  # the ancestor, its descendants, this tx
            if family > MAX_CHAIN:
                raise rejection(trace, CHAIN_LIMIT, Mempool.check,
                                {"ancestors": len(ancestors), "ancestor": ancestor,
                                 "descendants": family - 1, "limit": MAX_CHAIN},
                                "too-long-mempool-chain",
                                f"unconfirmed tx {ancestor.hex()} would have {family - 1} "
                                f"descendants; a chain holds at most {MAX_CHAIN} txs")
            largest = max(largest, family - 1)
        if trace is not None:
            trace.passed(CHAIN_LIMIT, Mempool.check, {"ancestors": len(ancestors),
                                                      "most_descendants": largest, "limit": MAX_CHAIN})

    def _room_for(self, fee: int, size: int, keep: set[bytes],
                  trace: Trace | None = None) -> list[bytes]:
        """Txids to evict (lowest fee rate first, never one in ``keep``: the new
        tx's own ancestors) so ``size`` more bytes fit, or ``mempool-full`` if
        that would evict a rate at least as high."""
        if self.bytes + size <= self.max_bytes:
            if trace is not None:
                trace.passed(ROOM, Mempool.check, {"mempool_bytes": self.bytes, "size": size,
                                                   "max_bytes": self.max_bytes, "evict": 0})
            return []
        plan, freed = [], 0
        for entry in sorted(self.entries.values(), key=lambda e: e.rate):
            if self.bytes - freed + size <= self.max_bytes:
                break
            if not entry.rate_below(fee, size):
                break
            if entry.tx.txid in keep:
                continue
            family = {entry.tx.txid} | self._descendants(entry.tx.txid)
            new = family - set(plan)
            plan += list(new)
            freed += sum(self.entries[t].size for t in new)
        values = {"mempool_bytes": self.bytes, "size": size, "max_bytes": self.max_bytes,
                  "fee": fee, "freed": freed}
        if self.bytes - freed + size > self.max_bytes:
            raise rejection(trace, ROOM, Mempool.check, values, "mempool-full",
                            f"mempool holds {self.bytes} of {self.max_bytes} bytes and this tx's "
                            f"fee rate {Decimal(fee) / size:.2f} units/byte is not above the lowest")
        if trace is not None:
            trace.passed(ROOM, Mempool.check, {**values, "evict": len(plan)})
        return plan

    def _add(self, entry: Entry) -> None:
        txid = entry.tx.txid
        self.entries[txid] = entry
        if entry.time < self.oldest:
            self.oldest = entry.time
        for txin in entry.tx.inputs:
            self.spends[txin.outpoint] = txid
        for parent in entry.parents:
            self.entries[parent].children.add(txid)
        self.bytes += entry.size

    def _remove_one(self, txid: bytes) -> Tx:
        entry = self.entries.pop(txid)
        for txin in entry.tx.inputs:
            if self.spends.get(txin.outpoint) == txid:
                del self.spends[txin.outpoint]
        for parent in entry.parents:
            if parent in self.entries:
                self.entries[parent].children.discard(txid)
        for child in entry.children:
            if child in self.entries:
                self.entries[child].parents.discard(txid)
        self.bytes -= entry.size
        return entry.tx

    def _remove_with_descendants(self, txid: bytes, removed: list[Tx]) -> None:
        if txid not in self.entries:
            return
        for child in self._descendants(txid) | {txid}:
            if child in self.entries:
                removed.append(self._remove_one(child))

    # -- blocks and reorgs -------------------------------------------------------------------
    def update_for_chain(self, connected: list[Block], disconnected: list[Block]) -> list[tuple[Tx, str]]:
        """Follow the chain: drop txs now confirmed ('block') or conflicting with a
        block ('conflict'); after a reorg, put back the disconnected blocks' txs
        and drop whatever no longer fits ('reorg'). Returns (tx, reason) removed."""
        removed: list[tuple[Tx, str]] = []
        if disconnected:
            return self._rebuild(connected, disconnected)
        for block in connected:
            for tx in block.txs:
                if tx.txid in self.entries:
                    entry = self.entries[tx.txid]
                    self._remove_one(tx.txid)
                    removed.append((entry.tx, "block"))
                for txin in tx.inputs:
                    rival = self.spends.get(txin.outpoint)
                    if rival is not None:
                        gone: list[Tx] = []
                        self._remove_with_descendants(rival, gone)
                        removed += [(t, "conflict") for t in gone]
        return removed

    def _rebuild(self, connected: list[Block], disconnected: list[Block]) -> list[tuple[Tx, str]]:
        """After a reorg: the disconnected blocks' txs first (oldest block first,
        never coinbases), then the previous mempool in arrival order, each
        checked afresh against the new tip."""
        confirmed = {tx.txid for block in connected for tx in block.txs}
        spent_by_blocks = {txin.outpoint for block in connected for tx in block.txs
                           for txin in tx.inputs}
        previous = sorted(self.entries.values(), key=lambda e: e.time)
        returning = [tx for block in reversed(disconnected) for tx in block.txs[1:]
                     if tx.txid not in confirmed]
        now = self.clock()
        self.entries.clear()
        self.spends.clear()
        self.bytes = 0
        self.oldest = math.inf
        removed: list[tuple[Tx, str]] = []
        refused: dict[bytes, str] = {}  # txid -> why; a descendant inherits its parent's reason
        for tx, time, was_pooled in ([(tx, now, False) for tx in returning]
                                     + [(e.tx, e.time, True) for e in previous]):
            try:
                _, evicted = self.accept(tx, time)
                removed += [(t, "size") for t in evicted]
            except RuleError:
                inherited = [refused[i.prev_txid] for i in tx.inputs
                             if refused.get(i.prev_txid, "block") != "block"]
                if tx.txid in confirmed:
                    reason = "block"
                elif any(txin.outpoint in spent_by_blocks for txin in tx.inputs):
                    reason = "conflict"
                else:
                    reason = inherited[0] if inherited else "reorg"
                refused[tx.txid] = reason
                if was_pooled:
                    removed.append((tx, reason))
        return removed

    def expire(self, now: float) -> list[tuple[Tx, str]]:
        """Txs that arrived more than ``EXPIRY_SECONDS`` before ``now``, with
        their descendants. The node calls it every second; the pool is looked
        through only once ``oldest`` (a lower bound of the arrival times: a
        removal leaves it, a look through sets it exactly) says one may be due."""
        if now - self.oldest <= EXPIRY_SECONDS:
            return []
        old = [t for t, e in self.entries.items() if now - e.time > EXPIRY_SECONDS]
        removed: list[Tx] = []
        for txid in old:
            self._remove_with_descendants(txid, removed)
        self.oldest = min((e.time for e in self.entries.values()), default=math.inf)
        return [(tx, "expiry") for tx in removed]

    # -- mining ----------------------------------------------------------------------------------
    def select(self, max_bytes: int) -> tuple[list[Tx], int]:
        """Txs for a block, best fee rate first, parents before children,
        within ``max_bytes``. Returns (txs, total fees)."""
        def key(entry: Entry):
            return (-entry.rate, entry.time, entry.tx.txid)

        ready = [key(e) for e in self.entries.values() if not e.parents]
        heapq.heapify(ready)
        chosen: list[Tx] = []
        included: set[bytes] = set()
        size = fees = 0
        while ready:
            entry = self.entries[heapq.heappop(ready)[2]]
            if size + entry.size > max_bytes:
                continue  # its descendants cannot go in either
            chosen.append(entry.tx)
            included.add(entry.tx.txid)
            size += entry.size
            fees += entry.fee
            for child in entry.children:
                if self.entries[child].parents <= included:
                    heapq.heappush(ready, key(self.entries[child]))
        return chosen, fees
