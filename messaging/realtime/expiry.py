"""One timer per process for every connection's token expiry (SPEC §10), as
heartbeat.py is for pings: a heap of deadlines and one loop.call_at handle
armed for the earliest, not one task or handle per socket.

Each connection whose token expires has two deadlines: `token_expiring`
EXPIRING_LEAD seconds before (at once when less is left) and the close at
`expires_at`. When one is due the clock only queues an event into the
connection's inbox (as shutdown's go_away does), so the connection's own task
decides, in order with the client's frames: a `refresh` that arrived first
has already moved `expires_at`, and the stale event does nothing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from typing import Protocol

logger = logging.getLogger(__name__)

EXPIRING_LEAD = 60.0
WARN = "warn"
EXPIRE = "expire"


class Expiring(Protocol):
    def token_deadline(self, kind: str) -> None: ...


class ExpiryClock:
    def __init__(self, lead: float = EXPIRING_LEAD) -> None:
        self.lead = lead
        # (when: Unix time, tie-breaker, generation, kind, member)
        self._heap: list[tuple[float, int, int, str, Expiring]] = []
        self._generation: dict[Expiring, int] = {}
        self._counter = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None

    def __len__(self) -> int:
        return len(self._generation)

    def schedule(self, member: Expiring, expires_at: float | None) -> None:
        """(Re)set `member`'s deadlines for a token expiring at `expires_at`
        (Unix time); None forgets them. Earlier deadlines are dropped."""
        generation = next(self._counter)
        if expires_at is None:
            self.discard(member)
            return
        self._generation[member] = generation
        for when, kind in ((expires_at - self.lead, WARN), (expires_at, EXPIRE)):
            heapq.heappush(
                self._heap, (when, next(self._counter), generation, kind, member)
            )
        self._compact()
        self._arm()

    def discard(self, member: Expiring) -> None:
        """The connection left: its deadlines become stale."""
        if self._generation.pop(member, None) is not None:
            self._compact()

    def _compact(self) -> None:
        # Stale entries hold a closed consumer until their time: drop them
        # once they outnumber the live ones.
        if len(self._heap) > 4 * len(self._generation) + 64:
            self._heap = [
                entry for entry in self._heap if self._is_current(entry[2], entry[4])
            ]
            heapq.heapify(self._heap)

    def _is_current(self, generation: int, member: Expiring) -> bool:
        return self._generation.get(member) == generation

    def _arm(self) -> None:
        if not self._heap:
            return
        when = self._heap[0][0]
        if self._armed_for is not None and self._armed_for <= when:
            return  # already armed for this or an earlier deadline
        if self._handle is not None:
            self._handle.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - time.time())
        self._armed_for = when
        self._handle = loop.call_at(loop.time() + delay, self._fire)

    def _fire(self) -> None:
        """On the loop, when the earliest deadline is due."""
        self._handle = self._armed_for = None
        now = time.time()
        while self._heap and self._heap[0][0] <= now:
            _, _, generation, kind, member = heapq.heappop(self._heap)
            if not self._is_current(generation, member):
                continue
            if kind == EXPIRE:
                del self._generation[member]
            try:
                member.token_deadline(kind)
            except Exception:
                # One connection (say, one whose inbox is gone) must not stop
                # the timer for every other.
                logger.exception("token deadline of one connection failed")
        self._arm()


_clocks: dict[asyncio.AbstractEventLoop, ExpiryClock] = {}


def expiry_clock_for_loop() -> ExpiryClock:
    loop = asyncio.get_running_loop()
    clock = _clocks.get(loop)
    if clock is None:
        for stale in [other for other in _clocks if other.is_closed()]:
            del _clocks[stale]
        clock = _clocks[loop] = ExpiryClock()
    return clock
