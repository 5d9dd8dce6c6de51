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
error), and compute the sighash (it needs the tx). A worker (``python -m
chain.sigcheck``) gets only (pubkey, signature, sighash) records, 129 bytes
each, over a pipe (no pickling, and no helper thread in the caller's process
to contend for its GIL: ``concurrent.futures``' process pool has two), and
answers the position of the first that does not verify (``first_invalid``);
the caller runs that one check again to get its exact code and sentence.
Since the caller writes the block meanwhile, a block with a bad signature
costs its write too, rolled back (chain/chainstate.py): no more than a
valid block of the same size costs. Each worker answers its chunks in order, and the verdict
reads every answer, even after a failure. Blocks with fewer than
``min_jobs`` checks are checked in the calling thread: sending them would
cost more than it saves. A worker that dies, or gives no answer
within ``ANSWER_TIMEOUT``, costs new workers at the next block; the chunks
it had are checked in the calling thread.
"""

import os
import select
import subprocess
import sys

from .coins import Coin
from .errors import RuleError
from .keys import owner_of, verify
from .sigcache import SignatureCache
from .tx import Tx
from .tx_rules import check_input_authorization

CHUNK = 256  # checks per message to a worker: ~15 ms of work, 33 kB
# A chunk takes milliseconds; a worker silent this long is stuck (or stopped).
ANSWER_TIMEOUT = 30.0
RECORD = 33 + 64 + 32  # bytes of one check sent: pubkey, signature, sighash
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds chain/
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


class _Worker:
    """One verification process (``python -m chain.sigcheck``) and the pipes
    to it: chunks go to its stdin as a 4-byte length and the records, each
    answer comes back on its stdout as 4 bytes. A fresh interpreter, not a
    fork of ours (which may hold a lock one of our threads took) and not
    multiprocessing's spawn (which runs our main module again)."""

    def __init__(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen([sys.executable, "-m", "chain.sigcheck"], bufsize=0,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def send(self, records: bytes) -> None:
        self.process.stdin.write(len(records).to_bytes(4, "little") + records)

    def answer(self) -> int | None:
        """The answer to its oldest unanswered chunk: the position of the first
        failing record, -1 if all pass, None if it died or gave no answer
        within ``ANSWER_TIMEOUT`` seconds."""
        try:
            ready, _, _ = select.select([self.process.stdout], [], [], ANSWER_TIMEOUT)
            data = self.process.stdout.read(4) if ready else b""
        except (OSError, ValueError):  # closed
            return None
        return int.from_bytes(data, "little", signed=True) if len(data) == 4 else None

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            pipe.close()  # at the end of its stdin, the worker exits
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ParallelVerifier:
    """Signature checks in ``workers`` processes, overlapped with the rest of
    the block's work; by default one per CPU but one, which the caller's
    thread keeps busy (a third runnable process on two cores would slow the
    caller, whose work is the longer; 0 workers: all in the calling thread).
    ``sent`` counts the checks handed to the workers so far. One block at a
    time: a batch's answers are read from the pipes its chunks went down, so
    two threads must not run batches on one verifier at once (the chain
    state connects one block at a time)."""

    def __init__(self, workers: int | None = None, min_jobs: int = 64,
                 cache: SignatureCache | None = None):
        self.workers = (os.cpu_count() or 1) - 1 if workers is None else workers
        self.min_jobs = min_jobs
        self.cache = cache
        self.sent = 0
        self._pool: list[_Worker] = []  # started by the first block worth it
        self._next = 0

    def start(self, magic: bytes, count: int) -> "SerialBatch | ParallelBatch":
        if count < self.min_jobs or self.workers < 1:
            return SerialBatch(magic, self.cache)
        if not self._pool:
            self._pool = [_Worker() for _ in range(self.workers)]
        return ParallelBatch(self, magic)

    def submit(self, records: bytes) -> _Worker | None:
        """Send a chunk to the next worker, whose answer ``answer`` reads;
        None if the workers are gone (the chunk is then the caller's to check)."""
        if not self._pool:
            return None  # one died during this block
        worker = self._pool[self._next % len(self._pool)]
        self._next += 1
        self.sent += len(records) // RECORD
        try:
            worker.send(records)
        except OSError:  # BrokenPipeError: it died
            self.replace_broken_pool()
            return None
        return worker

    def replace_broken_pool(self) -> None:
        """A worker died: every worker is stopped, and the next block worth it
        starts new ones (answers still in flight are given up)."""
        pool, self._pool = self._pool, []
        for worker in pool:
            worker.process.kill()
            worker.close()

    def close(self) -> None:
        pool, self._pool = self._pool, []
        for worker in pool:
            worker.close()


class ParallelBatch:
    """One block's checks, sent to a ``ParallelVerifier``'s workers chunk by chunk."""

    def __init__(self, verifier: ParallelVerifier, magic: bytes):
        self.verifier, self.magic, self.cache = verifier, magic, verifier.cache
        self.local: Failure | None = None  # a failure found in the calling thread
        self.jobs: list[AuthJob] = []  # of the chunk being filled
        self.records: list[bytes] = []
        self.chunks: list[tuple[list[AuthJob], bytes, _Worker | None]] = []

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
        self.records += (txin.pubkey, txin.signature, tx.sighash(index, coin.txout, self.magic))
        if len(self.jobs) >= CHUNK:
            self._send()

    def _send(self) -> None:
        if self.jobs:
            records = b"".join(self.records)
            self.chunks.append((self.jobs, records, self.verifier.submit(records)))
            self.jobs, self.records = [], []

    def verdict(self) -> Failure | None:
        """Every chunk's answer is read, even after a failure: the next block
        must not read this one's."""
        self._send()
        failure = None
        for jobs, records, worker in self.chunks:
            position = None if worker is None else worker.answer()
            if position is None:  # the worker is gone: this chunk is checked here
                self.verifier.replace_broken_pool()
                position = first_invalid(records)
            if position >= 0 and failure is None:  # the exact error
                failure = verify_serial([jobs[position]], self.magic)
        if failure is None and self.local is None and self.cache is not None:
            for _, tx, index, coin in (job for jobs, _, _ in self.chunks for job in jobs):
                self.cache.add(self.cache.key(tx, index, coin, self.magic))
        return failure or self.local


def first_invalid(records: bytes) -> int:
    """The position of the first record (pubkey, signature, sighash) that does
    not ``verify``, or -1 if all do."""
    for position, start in enumerate(range(0, len(records), RECORD)):
        if not verify(records[start:start + 33], records[start + 33:start + 97],
                      records[start + 97:start + RECORD]):
            return position
    return -1


def serve(source, sink) -> None:
    """A worker process: answer chunks until its input ends."""
    while len(header := source.read(4)) == 4:
        records = source.read(int.from_bytes(header, "little"))
        sink.write(first_invalid(records).to_bytes(4, "little", signed=True))
        sink.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
