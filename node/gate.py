"""Who may touch the node now: the event loop, or the validation thread.

The node (chain state, mempool, peers) is plain synchronous code that two
threads must never run at once: one SQLite connection, dicts iterated and
changed, counters read and written. Connecting a 2,000-tx block takes
hundreds of milliseconds, and checking a 1 MB tx about as long; on the
event loop that would stall every peer, ping and RPC client meanwhile. So
the shell runs such work on ONE validation thread (``offload``) and keeps
the loop free, and every other call into the node waits for it (``held``):

* ``held()`` is an ``async with`` around a synchronous call on the loop. When
  no validation runs it enters at once (an uncontended ``asyncio.Lock``
  never suspends), so the common case costs nothing.
* ``offload(work, finish)`` takes the same lock, sets ``busy``, runs
  ``work()`` on the validation thread while the loop serves everyone else,
  then calls ``finish(value)`` and the shell's ``after()`` on the loop before
  the lock is released: the shell carries out what the node decided before
  anyone else may call it.
  The lock is released by the thread's completion, not by the caller, so a
  caller cancelled meanwhile (a client that hung up, a stopping server)
  never lets anyone in while the thread still runs.
* ``free`` is True when nobody has the node and nobody waits for it: a
  synchronous call may then run at once without ``held`` (the peer links
  do so for every frame: three coroutines fewer per frame).
* ``busy`` is True exactly while the thread owns the node; callbacks the
  node makes from the thread (``on_actions``, ``flush_at``) see it and
  leave the outbox for ``after``.

Waiters enter in the order they asked (``asyncio.Lock`` is FIFO), and each
peer's reader hands over its next frame only after the previous one was
handled, so every peer's messages are still handled in the order they came.

The thread holds the GIL while it runs Python; the loop gets it back within
one switch interval whenever it has something to do (``sys.setswitchinterval``:
the server sets 1 ms, Python's default is 5 ms, and a turn of the loop may
wait for it several times, at each system call), and C code that holds the
GIL for long (``json.loads`` of a 4 MiB frame: a few ms) bounds the rest.
``scripts/bench_loop_lag.py`` measures the longest stall that remains.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

# A frame or an RPC's hex this long or longer is validated on the thread:
# 16 KiB of text is an 8 KB tx, about 60 inputs, about 10 ms to check. Smaller
# ones (every ordinary relayed tx) stay on the loop, where a thread hop would
# cost more than the check.
OFFLOAD_CHARS = 16_384


class NodeGate:
    """Who has the node: the loop (``held``) or the validation thread (``offload``)."""

    def __init__(self, after=lambda: None, thread_name: str = "validate"):
        """``after()``: called on the loop after every offloaded call, success or
        not, while the node is still held (the shell empties the outbox)."""
        self._lock = asyncio.Lock()
        self.thread = ThreadPoolExecutor(1, thread_name_prefix=thread_name)
        self._after = after
        self.busy = False
        self.offloaded = 0  # calls run on the validation thread so far
        self.waiting = 0  # calls waiting for the node now
        self._held = _Held(self)

    @property
    def free(self) -> bool:
        """Nobody has the node and nobody waits for it: a synchronous call may
        use it now, as ``held`` would let it in at once."""
        return self.waiting == 0 and not self._lock.locked()

    def held(self) -> "_Held":
        """The node for a synchronous call on the loop, once no validation runs
        (``async with gate.held(): ...``)."""
        return self._held

    async def _acquire(self) -> None:
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1

    async def offload(self, work, finish=lambda value: None):
        """``work()`` on the validation thread, then ``finish(value)`` on the
        loop while the node is still held; returns the value (or raises what
        ``work`` raised)."""
        await self._acquire()
        self.busy = True
        try:
            future = asyncio.get_running_loop().run_in_executor(self.thread, work)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda done: self._done(done, finish))
        return await asyncio.shield(future)

    def _done(self, future: asyncio.Future, finish) -> None:
        try:
            self.offloaded += 1
            self.busy = False
            if not future.cancelled() and future.exception() is None:
                finish(future.result())
            self._after()
        finally:
            self._release()

    def _release(self) -> None:
        self.busy = False
        self._lock.release()

    def close(self) -> None:
        self.thread.shutdown(wait=True, cancel_futures=True)


class _Held:
    """``NodeGate.held``: a class, not a generator-based context manager, which
    costs about three times as much, and every frame and write goes through it."""
    __slots__ = ("gate",)

    def __init__(self, gate: NodeGate):
        self.gate = gate

    async def __aenter__(self) -> None:
        await self.gate._acquire()

    async def __aexit__(self, *exc) -> None:
        self.gate._lock.release()
