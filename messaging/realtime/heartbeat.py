"""One timer per process drives every connection's heartbeat (SPEC §2, §6).

Each beat: close connections silent for longer than BRIDGE_HEARTBEAT_TIMEOUT
(4408), ping the others, rewrite the whole process's registry entries in one
Redis round trip, re-join every connection's groups and let each connection
catch up from the store. The rewrite and re-join are what make a Redis that
restarted empty, or a pub/sub subscription lost in a reconnect, heal within one
interval without clients reconnecting. The instance's own entry (for
/api/stats) is messaging.realtime.instance_registry's, written with or without
connections.

One task per loop instead of one per socket: at 5,000 idle connections it is
one wake-up and one pipeline per interval rather than 5,000 of each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Protocol

from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from messaging import frames, presence, topic_presence
from messaging.streams import history
from messaging.ws_database import run_db

logger = logging.getLogger(__name__)


class Beating(Protocol):
    last_frame_at: float
    connection: presence.ConnectionInfo

    async def heartbeat_timed_out(self) -> None: ...
    async def heartbeat(self, latest: Mapping[str, int]) -> None: ...
    def streams(self) -> list[str]: ...
    def go_away(self, retry_after_ms: int) -> None: ...


class Heartbeat:
    def __init__(self) -> None:
        self.members: set[Beating] = set()
        self._task: asyncio.Task | None = None
        self.stopped = False

    def add(self, member: Beating) -> None:
        self.members.add(member)
        if self.stopped:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        """No more beats (the process is leaving, realtime/shutdown.py): a beat
        would re-register connections and the instance that are being removed."""
        self.stopped = True
        if self._task is not None:
            self._task.cancel()

    def discard(self, member: Beating) -> None:
        self.members.discard(member)

    async def _run(self) -> None:
        # A fixed schedule: sleeping a whole interval *after* each beat would
        # stretch the period by the beat's own duration (seconds at thousands
        # of connections) past the registry's TTL of two intervals.
        interval = settings.BRIDGE_HEARTBEAT_INTERVAL
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + interval
        while self.members:
            await asyncio.sleep(max(0.0, next_beat - loop.time()))
            next_beat = max(next_beat + interval, loop.time())
            try:
                await self.beat()
            except Exception:
                logger.exception("heartbeat failed; next beat in one interval")

    async def beat(self) -> None:
        now = time.monotonic()
        timeout = settings.BRIDGE_HEARTBEAT_TIMEOUT
        alive = []
        for member in list(self.members):
            if now - member.last_frame_at > timeout:
                self.members.discard(member)
                await member.heartbeat_timed_out()
            else:
                alive.append(member)
        # The registry first: it is what other instances see, and it expires.
        try:
            seen = frames.now_text()
            for member in alive:
                member.connection.last_seen = seen
            await presence.refresh([member.connection for member in alive])
            subscriptions = [
                (topic, member.connection)
                for member in alive
                for topic in member.streams()[1:]
            ]
            if subscriptions:
                await topic_presence.refresh(subscriptions)
        except (RedisError, OSError) as exc:
            logger.warning("could not refresh presence: %s", type(exc).__name__)
        latest = await _latest_seqs({s for m in alive for s in m.streams()})
        # One connection failing (say, closing mid-beat) must not stop the others.
        beats = asyncio.gather(
            *(member.heartbeat(latest) for member in alive),
            return_exceptions=True,
        )
        try:
            # Bounded, so that a hung Redis cannot stop every later beat.
            outcomes = await asyncio.wait_for(beats, settings.BRIDGE_HEARTBEAT_INTERVAL)
        except TimeoutError:
            logger.warning(
                "heartbeat of %d connections overran one interval", len(alive)
            )
            return
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                logger.warning("heartbeat of one connection failed: %r", outcome)


async def _latest_seqs(streams: set[str]) -> dict[str, int]:
    if not streams:
        return {}
    try:
        return await run_db(history.latest_seqs, streams)
    except DatabaseError as exc:
        logger.warning("heartbeat could not read seqs: %s", type(exc).__name__)
        return {}


_heartbeats: dict[asyncio.AbstractEventLoop, Heartbeat] = {}


def heartbeat_for_loop() -> Heartbeat:
    loop = asyncio.get_running_loop()
    beat = _heartbeats.get(loop)
    if beat is None:
        for stale in [other for other in _heartbeats if other.is_closed()]:
            del _heartbeats[stale]
        beat = _heartbeats[loop] = Heartbeat()
    return beat


def local_connection_count() -> int:
    return sum(len(beat.members) for beat in _heartbeats.values())
