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
saw it pass (the mempool checked the tx), and pack it. A worker (``python
-m chain.sigcheck``) gets chunks over a pipe (no pickling, and no helper
thread in the caller's process to contend for its GIL: ``concurrent.futures``'
process pool has two): the raw bytes of the chunk's txs, and per check the
tx, the input index and the amount and owner of the coin (36 bytes). It
decodes the txs and runs ``check_input_authorization`` itself, pubkey
parse, owner hash and sighash included, so the caller's thread, the longer
job on two cores, spends 1.2 us per check instead of 6.2 (timeit); it
answers the position of the first check that fails (``first_invalid``), and
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

import fcntl
import os
import select
import struct
import subprocess
import sys

from .coins import Coin
from .errors import RuleError
from .sigcache import SignatureCache
from .tx import Tx
from .tx_rules import check_input_authorization

CHUNK = 256  # checks per message to a worker: ~15 ms of work, ~60 kB of one-input txs
# Bytes a worker's input pipe holds (Linux's default is 64 kB, about one
# chunk): enough for a whole block's chunks of one-input txs, so the caller
# never waits for a worker to read before going on with its own work.
PIPE_SIZE = 1 << 20
# A chunk takes milliseconds; a worker silent this long is stuck (or stopped).
ANSWER_TIMEOUT = 30.0
_CHECK = struct.Struct("<IIq")  # tx number in the chunk, input index, coin amount (owner follows)
CHECK_SIZE = _CHECK.size + 20
_U32 = struct.Struct("<I")
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
    to it: chunks go to its stdin as a 4-byte length and the chunk, each
    answer comes back on its stdout as 4 bytes. A fresh interpreter, not a
    fork of ours (which may hold a lock one of our threads took) and not
    multiprocessing's spawn (which runs our main module again)."""

    def __init__(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen([sys.executable, "-m", "chain.sigcheck"], bufsize=0,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
        if set_pipe_size is not None:
            try:
                fcntl.fcntl(self.process.stdin.fileno(), set_pipe_size, PIPE_SIZE)
            except OSError:  # over /proc/sys/fs/pipe-max-size: the caller may wait more
                pass

    def send(self, chunk: bytes) -> None:
        self.process.stdin.write(len(chunk).to_bytes(4, "little") + chunk)

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

    def submit(self, chunk: bytes, checks: int) -> _Worker | None:
        """Send a chunk of ``checks`` checks to the next worker, whose answer
        ``answer`` reads; None if the workers are gone (the chunk is then the
        caller's to check)."""
        if not self._pool:
            return None  # one died during this block
        worker = self._pool[self._next % len(self._pool)]
        self._next += 1
        self.sent += checks
        try:
            worker.send(chunk)
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
        self.jobs: list[AuthJob] = []  # of the chunk being filled
        self.txs: list[bytes] = []  # the raw bytes of its txs
        self.records: list[bytes] = []  # its checks (CHECK_SIZE bytes each)
        self.last_tx: Tx | None = None
        self.chunks: list[tuple[list[AuthJob], bytes, _Worker | None]] = []

    def add(self, key: tuple[int, int, int], tx: Tx, index: int, coin: Coin) -> None:
        if self.cache is not None and self.cache.key(tx, index, coin, self.magic) in self.cache:
            return
        if tx is not self.last_tx:  # a tx's inputs come one after another
            self.last_tx = tx
            self.txs.append(tx.raw)
        self.jobs.append((key, tx, index, coin))
        self.records.append(_CHECK.pack(len(self.txs) - 1, index, coin.amount) + coin.owner)
        if len(self.jobs) >= CHUNK:
            self._send()

    def _send(self) -> None:
        if self.jobs:
            chunk = encode_chunk(self.magic, self.txs, self.records)
            self.chunks.append((self.jobs, chunk, self.verifier.submit(chunk, len(self.jobs))))
            self.jobs, self.txs, self.records, self.last_tx = [], [], [], None

    def verdict(self) -> Failure | None:
        """Every chunk's answer is read, even after a failure: the next block
        must not read this one's."""
        self._send()
        failure = None
        for jobs, chunk, worker in self.chunks:
            position = None if worker is None else worker.answer()
            if position is None:  # the worker is gone: this chunk is checked here
                self.verifier.replace_broken_pool()
                position = first_invalid(chunk)
            if position >= 0 and failure is None:  # the exact error
                failure = verify_serial([jobs[position]], self.magic)
        if failure is None and self.cache is not None:
            for _, tx, index, coin in (job for jobs, _, _ in self.chunks for job in jobs):
                self.cache.add(self.cache.key(tx, index, coin, self.magic))
        return failure


def encode_chunk(magic: bytes, txs: list[bytes], records: list[bytes]) -> bytes:
    """A chunk for a worker: the network's magic, the raw bytes of its txs,
    then its checks (tx number, input index, amount and owner of the coin)."""
    parts = [bytes((len(magic),)), magic, _U32.pack(len(txs))]
    for raw in txs:
        parts += (_U32.pack(len(raw)), raw)
    return b"".join(parts + records)


def first_invalid(chunk: bytes, last: list | None = None) -> int:
    """The position of the first check of ``chunk`` whose input does not pass
    ``check_input_authorization`` (pubkey, owner, signature over the sighash,
    computed here from the tx), or -1 if all pass. The coin's height and kind
    do not enter that rule: they are not sent. ``last`` ([raw, tx], kept by
    the worker across chunks) saves decoding again a tx whose inputs span
    several chunks, and keeps its sighash prefix (a 7,000-input tx comes in
    28 chunks: 11 ms of decoding and hashing each)."""
    pos = 1 + chunk[0]
    magic = chunk[1:pos]
    txs = []
    for _ in range(_U32.unpack_from(chunk, pos)[0]):
        size = _U32.unpack_from(chunk, pos + 4)[0]
        raw = chunk[pos + 8:pos + 8 + size]
        if last is not None and last[0] == raw:
            txs.append(last[1])
        else:
            txs.append(Tx.decode(raw))
            if last is not None:
                last[:] = raw, txs[-1]
        pos += 4 + size
    pos += 4
    for position, start in enumerate(range(pos, len(chunk), CHECK_SIZE)):
        number, index, amount = _CHECK.unpack_from(chunk, start)
        coin = Coin(amount, chunk[start + _CHECK.size:start + CHECK_SIZE], 0, False)
        try:
            check_input_authorization(txs[number], index, coin, magic)
        except RuleError:
            return position
    return -1


def serve(source, sink) -> None:
    """A worker process: answer chunks until its input ends."""
    last = [b"", None]  # the last tx decoded: one tx, at most a block's size
    while len(header := source.read(4)) == 4:
        chunk = source.read(int.from_bytes(header, "little"))
        sink.write(first_invalid(chunk, last).to_bytes(4, "little", signed=True))
        sink.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
