"""The signature checks of a block: in the calling thread, or in worker processes.

``connect_block`` (chain/block_rules.py) meets a block's signature checks one
by one, in block order, while it looks up coins and applies the other rules.
It opens a *batch* with ``verifier.start(magic, count)``, ``add``s each
check to it, and at the end asks ``batch.verdict()``: the first failure in
block order as ``(key, tx, RuleError)``, or None. The key (tx position,
stage, input index) orders failures, so the error reported is the one a
check of every input in turn would have found first.

``SerialVerifier`` (one core; the default) keeps the checks and runs them in
the calling thread when the verdict is asked. ``ParallelVerifier`` sends them
in chunks of ``CHUNK`` to worker processes as soon as a chunk is full, so
they run while the caller keeps looking up coins, applies the other rules
and writes the block to SQLite; the verdict waits for the chunks. Processes,
not threads: libsecp256k1 releases the GIL (cffi does for every call), but
a thread that comes back from a check waits for the GIL while the caller
runs Python, up to the interpreter's 5 ms switch interval, so verifying
threads crawl exactly when the caller is busy (measured: a verify took 2.7x
as long beside one busy Python thread). In a process the checks only
compete for a core.

What the caller does before sending a check: skip it if the ``SignatureCache``
saw it pass (the mempool checked the tx), compare the pubkey's hash with the
coin's owner (cheap; on a mismatch the check runs here at once, for its exact
error), and compute the sighash (it needs the tx). A worker gets only
(pubkey, signature, sighash) triples and returns the position of the first
that does not verify (``chain.keys.first_invalid``); the caller runs that one
check again to get its exact code and sentence. Blocks with fewer than
``min_jobs`` checks are checked in the calling thread: sending them would
cost more than it saves. A worker that dies (``BrokenProcessPool``) costs a
new pool; its chunks are checked in the calling thread.
"""

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .coins import Coin
from .errors import RuleError
from .keys import first_invalid, owner_of
from .sigcache import SignatureCache
from .tx import Tx
from .tx_rules import check_input_authorization

CHUNK = 256  # checks per message to a worker: ~15 ms of work, ~35 kB
AuthJob = tuple[tuple[int, int, int], Tx, int, Coin]  # (key, tx, input index, coin spent)
Failure = tuple[tuple[int, int, int], Tx, RuleError]


def verify_serial(jobs: list[AuthJob], magic: bytes,
                  cache: SignatureCache | None = None) -> Failure | None:
    """Run authorization checks in order; the first failure and where it was."""
    for key, tx, index, coin in jobs:
        try:
            check_input_authorization(tx, index, coin, magic, cache)
        except RuleError as error:
            return key, tx, error
    return None


class SerialBatch:
    """Checks kept, then run in the calling thread when the verdict is asked."""

    def __init__(self, magic: bytes, cache: SignatureCache | None):
        self.magic, self.cache = magic, cache
        self.jobs: list[AuthJob] = []

    def add(self, key: tuple[int, int, int], tx: Tx, index: int, coin: Coin) -> None:
        self.jobs.append((key, tx, index, coin))

    def verdict(self) -> Failure | None:
        return verify_serial(self.jobs, self.magic, self.cache)


class SerialVerifier:
    """Every signature check in the calling thread (one core)."""

    def __init__(self, cache: SignatureCache | None = None):
        self.cache = cache

    def start(self, magic: bytes, count: int) -> SerialBatch:
        return SerialBatch(magic, self.cache)

    def close(self) -> None:
        """Nothing to release (the same interface as ``ParallelVerifier``)."""


class ParallelVerifier:
    """Signature checks in ``workers`` processes (one per CPU by default),
    overlapped with the rest of the block's work. ``sent`` counts the checks
    handed to the workers so far."""

    def __init__(self, workers: int | None = None, min_jobs: int = 64,
                 cache: SignatureCache | None = None):
        self.workers = workers or os.cpu_count() or 1
        self.min_jobs = min_jobs
        self.cache = cache
        self.sent = 0
        self._pool: ProcessPoolExecutor | None = None  # started by the first block worth it

    def start(self, magic: bytes, count: int) -> "SerialBatch | ParallelBatch":
        if count < self.min_jobs or self.workers == 1:
            return SerialBatch(magic, self.cache)
        return ParallelBatch(self, magic)

    def submit(self, checks: list[tuple[bytes, bytes, bytes]]) -> Future:
        self.sent += len(checks)
        try:
            return self._started().submit(first_invalid, checks)
        except BrokenProcessPool:  # a worker died since the last block
            self.replace_broken_pool()
            return self._started().submit(first_invalid, checks)

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fork of a process running threads (the node's) may copy a held lock
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def replace_broken_pool(self) -> None:
        """A worker died: the pool refuses all work; the next submit starts a new
        one. (Every chunk in flight reports it: the first one replaces the pool.)"""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class ParallelBatch:
    """One block's checks, sent to a ``ParallelVerifier``'s workers chunk by chunk."""

    def __init__(self, verifier: ParallelVerifier, magic: bytes):
        self.verifier, self.magic, self.cache = verifier, magic, verifier.cache
        self.local: Failure | None = None  # a failure found in the calling thread
        self.jobs: list[AuthJob] = []  # of the chunk being filled
        self.checks: list[tuple[bytes, bytes, bytes]] = []
        self.chunks: list[tuple[list[AuthJob], list[tuple[bytes, bytes, bytes]], Future]] = []

    def add(self, key: tuple[int, int, int], tx: Tx, index: int, coin: Coin) -> None:
        if self.local is not None:
            return  # a later check cannot fail first
        if self.cache is not None and self.cache.key(tx, index, coin, self.magic) in self.cache:
            return
        txin = tx.inputs[index]
        if owner_of(txin.pubkey) != coin.owner:
            self.local = verify_serial([(key, tx, index, coin)], self.magic)
            return
        self.jobs.append((key, tx, index, coin))
        self.checks.append((txin.pubkey, txin.signature, tx.sighash(index, coin.txout, self.magic)))
        if len(self.checks) >= CHUNK:
            self._send()

    def _send(self) -> None:
        if self.checks:
            self.chunks.append((self.jobs, self.checks, self.verifier.submit(self.checks)))
            self.jobs, self.checks = [], []

    def verdict(self) -> Failure | None:
        self._send()
        for jobs, checks, future in self.chunks:
            try:
                position = future.result()
            except BrokenProcessPool:  # a worker died: check this chunk here
                self.verifier.replace_broken_pool()
                position = first_invalid(checks)
            if position is not None:  # the exact error, and it comes before any local one
                return verify_serial([jobs[position]], self.magic)
        if self.cache is not None and self.local is None:
            for _, tx, index, coin in (job for jobs, _, _ in self.chunks for job in jobs):
                self.cache.add(self.cache.key(tx, index, coin, self.magic))
        return self.local
