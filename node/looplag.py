"""How late the event loop wakes up: the node's own measure of its stalls.

A task sleeps ``INTERVAL`` seconds again and again and notes how much later
than asked it woke: ``lag = woke - (went to sleep + INTERVAL)``. Anything
that holds the loop (a long synchronous call, a thread holding the GIL)
delays that wake-up. A stall of S seconds shows as a lag between
S - INTERVAL and S (it may begin while the task sleeps), so the monitor
sees every stall longer than ``INTERVAL`` and never overstates one.

It keeps the largest lag since start (``max``) and hands each lag to
``observe`` (the ``/metrics`` histogram). Forty wake-ups a second cost
about a millisecond of CPU per second.
"""

import asyncio

INTERVAL = 0.025  # seconds between wake-ups


class LoopLagMonitor:
    def __init__(self, observe=lambda seconds: None, interval: float = INTERVAL):
        self.observe = observe
        self.interval = interval
        self.max = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - due)
            self.max = max(self.max, lag)
            self.observe(lag)
