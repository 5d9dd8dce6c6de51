"""How heavy RPC slices share the event loop (``rpc.Turns``, node/rpc.py).

Real ``Turns`` over a real ``NodeGate``, on a real event loop; the work of a
call is a busy wait of known length, and a callback that re-arms itself with
``call_soon`` numbers the loop's turns, so every check here is about order
and about the durations the slices themselves measured, not about how fast
this machine is:

* a batch keeps its turn for consecutive short calls, and two batches at
  once proceed in runs of many calls, not call by call;
* in one turn of the loop the slices run end within ``YIELD_SECONDS`` of
  the first one's start (but the last), those of calls outside ``Turns``
  in the same batch included; while others wait they are one task's; a
  task that asks while a kept turn's task went away and nobody waits goes
  on with that turn, in the same turn of the loop;
* a single call arriving behind batches waits for at most about one
  ``YIELD_SECONDS`` of their work;
* a slice over ``PAUSE_FROM`` and every generator step is followed by a
  pause (as long as the slice, for a long one) in which no slice starts;
* a kept turn ends when its task awaits something else, and a batch's
  envelope (``jsonrpc.answer``) does not count the wait for a turn as
  holding the loop.
"""

import asyncio
import time

from node import jsonrpc, rpc
from node.gate import NodeGate

CALL = 0.0002  # seconds of work per short call: a small sendrawtransaction is about 0.12 ms


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Recorder:
    """Runs slices through ``Turns`` and writes down which task ran each,
    in which turn of the loop, from when to when."""

    def __init__(self):
        self.turns = rpc.Turns(NodeGate())
        self.log: list[tuple[str, int, float, float]] = []  # (who, loop turn, start, end)
        self.loop_turn = 0

    def tick(self) -> None:
        self.loop_turn += 1
        asyncio.get_running_loop().call_soon(self.tick)

    def work(self, who: str, seconds: float):
        def compute():
            start = time.perf_counter()
            busy(seconds)
            self.log.append((who, self.loop_turn, start, time.perf_counter()))
            return who
        return compute

    async def batch(self, who: str, calls: int, seconds: float = CALL) -> None:
        for _ in range(calls):
            assert await self.turns.take(self.work(who, seconds)) == who

    def runs(self) -> list[list[tuple]]:
        """The log cut where the task changes."""
        runs: list[list[tuple]] = []
        for entry in self.log:
            if runs and runs[-1][-1][0] == entry[0]:
                runs[-1].append(entry)
            else:
                runs.append([entry])
        return runs


def run(main):
    async def wrapper():
        recorder = Recorder()
        recorder.tick()
        try:
            return await main(recorder)
        finally:
            recorder.turns.gate.close()
    return asyncio.run(wrapper())


def test_two_batches_take_turns_in_runs_not_call_by_call():
    async def main(r: Recorder):
        await asyncio.gather(r.batch("a", 200), r.batch("b", 200))
        return r

    r = run(main)
    runs = r.runs()
    assert len(r.log) == 400
    # Call by call would be about 400 runs (main before round 4: 368); a turn holds
    # about YIELD_SECONDS / 2 of 0.2 ms calls (one batch waits), so about 12 each,
    # fewer when this process is descheduled in the middle of a turn.
    assert 4 <= len(runs) <= 400 // 3, [len(run) for run in runs]
    # Both batches advance all along: each has several turns before either ends.
    first_end = min(max(i for i, e in enumerate(r.log) if e[0] == who) for who in "ab")
    assert {e[0] for e in r.log[:first_end]} == {"a", "b"}
    assert sum(1 for run in runs if r.log.index(run[0]) < first_end) >= 4


def test_batches_through_the_envelope_keep_their_whole_turns():
    """``jsonrpc.answer`` yields once it held the loop ``YIELD_SECONDS``;
    the wait for a turn is not holding it (``jsonrpc.RESUMED``), or it would
    yield, and so end its turn, right after the turn began."""
    async def main(r: Recorder):
        async def batch(who: str):
            async def call(method, params):
                return {"result": await r.turns.take(r.work(who, CALL))}
            body = [{"jsonrpc": "2.0", "id": i, "method": "sendrawtransaction"} for i in range(150)]
            parts = await jsonrpc.answer(body, call)
            assert f'"result":"{who}"'.encode() in parts[1] and len(parts) == 2 * 150 + 1

        await asyncio.gather(*(batch(who) for who in "abc"))
        return r

    runs = run(main).runs()
    # A turn holds about YIELD_SECONDS / 3 of 0.2 ms calls (two batches wait): 8 or so.
    # Counting the wait, about a third of the turns ended after one or two calls.
    short = [len(run) for run in runs if len(run) <= 2]
    assert len(short) < len(runs) / 4, [len(run) for run in runs]


def test_the_loop_is_held_at_most_one_yield_at_a_time():
    async def main(r: Recorder):
        await asyncio.gather(*(r.batch(who, 150) for who in "abc"))
        return r

    r = run(main)
    by_turn: dict[int, list[tuple]] = {}
    for entry in r.log:
        by_turn.setdefault(entry[1], []).append(entry)
    for entries in by_turn.values():
        assert len({who for who, *_ in entries}) == 1  # one task's slices per turn of the loop
        # Every slice but the last ended within YIELD_SECONDS of the first one's start
        # (the last one crossed it); a pause of this process between slices only ends a turn sooner.
        first = entries[0][2]
        assert all(end - first < rpc.YIELD_SECONDS for *_, end in entries[:-1]), len(entries)
    assert len(by_turn) < len(r.log) / 3  # not a turn of the loop per call (main: 426 for 450)


def test_a_batch_mixing_calls_outside_turns_holds_the_loop_at_most_one_yield():
    """A batch's calls that are not HEAVY run under ``gate.held()``, outside
    ``Turns``: a turn taken without waiting (the lock was free) must not
    restart the envelope's count (``jsonrpc.RESUMED``), or the batch holds the
    loop for two ``YIELD_SECONDS`` (it did: about 9.4 ms)."""
    async def main(r: Recorder):
        gate = r.turns.gate

        async def call(method, params):
            if method == "getmempoolinfo":  # not HEAVY: rpc.run runs it under gate.held()
                async with gate.held():
                    r.work("batch", 0.0003)()
                return {"result": 0}
            return {"result": await r.turns.take(r.work("batch", 0.0001))}

        body = ([{"jsonrpc": "2.0", "id": 0, "method": "getmempoolinfo"}] * 15
                + [{"jsonrpc": "2.0", "id": 1, "method": "sendrawtransaction"}]
                + [{"jsonrpc": "2.0", "id": 2, "method": "getmempoolinfo"}] * 15) * 4
        await jsonrpc.answer(body, call)
        return r

    r = run(main)
    by_turn: dict[int, list[tuple]] = {}
    for entry in r.log:
        by_turn.setdefault(entry[1], []).append(entry)
    assert len(by_turn) > 1
    for entries in by_turn.values():
        first = entries[0][2]
        assert all(end - first < rpc.YIELD_SECONDS for *_, end in entries[:-1]), len(entries)


def test_a_kept_turn_whose_task_went_away_passes_to_the_next_in_the_same_turn_of_the_loop(monkeypatch):
    """One request per tx: each call is its own task. When a task's short slice
    leaves its turn kept and the task finishes, the next task that asks in the
    same turn of the loop, with nobody waiting, goes on with that turn at once
    (no queued waiter, no turn of the loop), and the turn's streak goes on."""
    monkeypatch.setattr(rpc, "YIELD_SECONDS", 1.0)  # a descheduled process must not end the turn

    async def main(r: Recorder):
        async def one(who: str):
            await r.turns.take(r.work(who, CALL))
        await asyncio.gather(*(one(who) for who in "abcd"))
        return r

    r = run(main)
    assert [who for who, *_ in r.log] == list("abcd")
    assert len({turn for _, turn, *_ in r.log}) == 1, r.log
    assert r.turns.waiting == 0 and not r.turns._lock.locked()


def test_a_single_call_waits_about_one_yield_behind_batches():
    async def main(r: Recorder):
        batches = [asyncio.ensure_future(r.batch(who, 300)) for who in "abc"]
        deadline = time.monotonic() + 10
        while len(r.log) < 100:  # the batches are well under way
            assert time.monotonic() < deadline, len(r.log)
            await asyncio.sleep(0)
        arrived = time.perf_counter()
        await r.turns.take(r.work("single", CALL))
        await asyncio.gather(*batches)
        return r, arrived

    r, arrived = run(main)
    mine = next(i for i, e in enumerate(r.log) if e[0] == "single")
    before = [e for e in r.log[:mine] if e[3] > arrived]
    worked = sum(end - start for _, _, start, end in before)
    longest = max(end - start for _, _, start, end in before)
    # Each batch ahead of it gets a share of YIELD_SECONDS; each may overrun it by one call.
    assert worked <= rpc.YIELD_SECONDS + 3 * longest + 0.001, (worked, len(before))
    assert len(before) >= 1


def test_long_slices_and_generator_steps_are_followed_by_a_pause():
    async def main(r: Recorder):
        async def heavy():
            for _ in range(5):
                await r.turns.take(r.work("heavy", 2 * rpc.PAUSE_FROM))

        async def steps():
            for _ in range(20):
                await r.turns.take(r.work("step", CALL), step=True)

        await asyncio.gather(heavy(), steps(), r.batch("batch", 300))
        return r

    r = run(main)
    for index, (who, turn, start, end) in enumerate(r.log[:-1]):
        following = r.log[index + 1]
        if who == "heavy":  # nothing else heavy starts during the pause
            assert following[2] - end >= end - start, (following, end - start)
        if who in ("heavy", "step"):  # and the loop turns before the next slice
            assert following[1] > turn


def test_a_kept_turn_ends_when_its_task_awaits_something_else():
    async def main(r: Recorder):
        b_done = asyncio.Event()

        async def interrupted():
            await r.turns.take(r.work("a", CALL))  # keeps its turn ...
            await b_done.wait()                    # ... then waits for something else: b's slice
            await r.turns.take(r.work("a", CALL))

        async def other():
            await asyncio.sleep(0)
            await r.turns.take(r.work("b", CALL))  # had a kept its turn meanwhile: never
            b_done.set()

        await asyncio.wait_for(asyncio.gather(interrupted(), other()), 10)
        await asyncio.sleep(0)  # a turn of the loop: the last kept turn ends
        assert r.turns.waiting == 0 and not r.turns._lock.locked()
        return r

    r = run(main)
    assert [who for who, *_ in r.log] == ["a", "b", "a"]


def test_a_turn_waits_for_the_validation_thread():
    """While the gate's thread has the node, a slice waits for it, and the
    turn is released again afterwards."""
    async def main(r: Recorder):
        gate = r.turns.gate
        started = asyncio.Event()
        loop = asyncio.get_running_loop()
        validated: list[float] = []

        def validate():
            loop.call_soon_threadsafe(started.set)
            busy(0.02)
            validated.append(time.perf_counter())
            return "validated"

        offload = asyncio.ensure_future(gate.offload(validate))
        await started.wait()
        assert gate.busy
        await r.turns.take(r.work("a", CALL))
        assert validated and r.log[0][2] >= validated[0]
        assert await offload == "validated"
        await r.batch("a", 3)
        await asyncio.sleep(0)
        assert not r.turns._lock.locked()
        return r

    r = run(main)
    assert len(r.log) == 4
