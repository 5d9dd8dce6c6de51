"""The event bus behind ``/events``: every subscriber gets every event.

Each event is encoded to JSON text once, when it is published, and that
text goes to every subscriber. Each subscriber has a bounded queue; one
that falls too far behind is dropped (its queue gets ``None``), so a slow
browser tab can never make the node buffer without limit or block the
event loop.
"""

import asyncio
import time

from . import wirejson

QUEUE_LIMIT = 10_000


class EventBus:
    def __init__(self):
        self._subscribers: set[asyncio.Queue] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT + 1)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    def publish(self, event: str, **fields) -> None:
        if not self._subscribers:
            return
        message = wirejson.dumps({"event": event, "time": int(time.time()), **fields}).decode()
        for queue in list(self._subscribers):
            if queue.qsize() >= QUEUE_LIMIT:
                self._subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(message)
