"""The queue between the socket and the application's handlers.

The read loop never runs application code: it puts events on this queue and goes
back to the socket, so it keeps answering pings and reading frames however slow a
handler is. One task takes events off the queue in order and calls the handlers;
one that raises is logged and the next event goes on.

The queue is bounded (`queue_size`). What happens when it is full is decided by
the client (see `Client` and the README, "When handlers fall behind"): stored
messages are never dropped for good, live-only ones are.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None] | None]


@dataclass
class Event:
    name: str
    payload: Any
    handlers: list[Handler]
    # Runs after the handlers, whatever they did (positions move here).
    done: Callable[[], None] | None = None
    # Runs before the handlers; False skips them (a duplicate found late).
    admit: Callable[[], bool] | None = field(default=None, repr=False)


class Dispatcher:
    def __init__(self, maxsize: int) -> None:
        if maxsize < 2:
            raise ValueError("queue_size must be at least 2")
        self.maxsize = maxsize
        self.handler_errors = 0
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._drained = asyncio.Event()

    def qsize(self) -> int:
        return self._queue.qsize()

    def full(self) -> bool:
        return self._queue.qsize() >= self.maxsize

    def put(self, event: Event) -> None:
        """Queue an event; never blocks (the caller checks `full()` first for
        events that may be dropped; control events always go in)."""
        self._drained.clear()
        self._queue.put_nowait(event)

    async def wait_below(self, size: int) -> None:
        while self._queue.qsize() > size:
            self._drained.clear()
            await self._drained.wait()

    def stop(self) -> None:
        """Stop once the events queued so far are handled."""
        self._queue.put_nowait(None)

    async def run(self) -> None:
        while (event := await self._queue.get()) is not None:
            try:
                await self._handle(event)
            finally:
                self._drained.set()

    async def _handle(self, event: Event) -> None:
        if event.admit is not None and not event.admit():
            return
        try:
            for handler in event.handlers:
                await self._call(handler, event)
        finally:
            if event.done is not None:
                event.done()

    async def _call(self, handler: Handler, event: Event) -> None:
        try:
            result = handler(event.payload)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self.handler_errors += 1
            logger.exception("bridge_client: %s handler %r raised", event.name, handler)
