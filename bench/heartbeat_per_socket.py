"""Bridge with one heartbeat task per socket instead of one timer per process.

Benchmark only: `bench.heartbeat_cost --strategies per-socket` serves this
(`bench.heartbeat_per_socket:application`) to compare with the timer that
Bridge ships (`messaging.realtime.heartbeat.Heartbeat`). It is Bridge's normal
application (`bridge_project.asgi.application`) with `messaging.realtime.heartbeat.
Heartbeat` replaced, before anything connects, by `PerSocketHeartbeat`, so that
`heartbeat_for_loop()` (which the consumers call) hands out this variant.

`add(member)` starts one asyncio task for that member which, on a fixed
schedule of BRIDGE_HEARTBEAT_INTERVAL (first beat one interval after connect),
does for that one socket what `Heartbeat.beat()` does for all of them: close it
(4408) if it has been silent past BRIDGE_HEARTBEAT_TIMEOUT and stop; else
rewrite its registry entries (one pipeline for one connection), read its user's
latest seq (one query on a thread), and ping / re-join / catch up. `discard()`
cancels that task.

Registering the instance (`register_this_instance()`: name, start time,
connection count, counters) is per process, not per socket, so it stays on one
small per-process loop once per interval, as in the timer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridge_project.settings")

from django.conf import settings
from redis.exceptions import RedisError

# Bridge's own application, imported first: it sets Django up (as `daphne
# bridge_project.asgi:application` would) before messaging's modules load.
from bridge_project.asgi import application
from messaging import frames, presence
from messaging.realtime import heartbeat, instance_registry
from messaging.realtime.heartbeat import Beating

logger = logging.getLogger("messaging.realtime.heartbeat")

__all__ = ["PerSocketHeartbeat", "application"]


class PerSocketHeartbeat:
    def __init__(self) -> None:
        # `members` is what local_connection_count() sums over.
        self.members: set[Beating] = set()
        self._tasks: dict[Beating, asyncio.Task] = {}
        self._registrar: asyncio.Task | None = None

    def add(self, member: Beating) -> None:
        self.members.add(member)
        loop = asyncio.get_running_loop()
        previous = self._tasks.pop(member, None)
        if previous is not None:
            previous.cancel()
        self._tasks[member] = loop.create_task(self._run(member))
        if self._registrar is None or self._registrar.done():
            self._registrar = loop.create_task(self._register())

    def discard(self, member: Beating) -> None:
        self.members.discard(member)
        task = self._tasks.pop(member, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _run(self, member: Beating) -> None:
        # The same fixed schedule as the timer, per socket.
        interval = settings.BRIDGE_HEARTBEAT_INTERVAL
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + interval
        while member in self.members:
            await asyncio.sleep(max(0.0, next_beat - loop.time()))
            next_beat = max(next_beat + interval, loop.time())
            try:
                if not await self.beat(member):
                    return
            except Exception:
                logger.exception("heartbeat failed; next beat in one interval")

    async def beat(self, member: Beating) -> bool:
        """One socket's beat; False once it was closed for silence."""
        if time.monotonic() - member.last_frame_at > settings.BRIDGE_HEARTBEAT_TIMEOUT:
            self.members.discard(member)
            self._tasks.pop(member, None)
            await member.heartbeat_timed_out()
            return False
        try:
            member.connection.last_seen = frames.now_text()
            await presence.refresh([member.connection])
        except (RedisError, OSError) as exc:
            logger.warning("could not refresh presence: %s", type(exc).__name__)
        # database_sync_to_async(history.latest_seqs)(streams), DatabaseError
        # logged and read as {} as in the timer.
        latest = await heartbeat._latest_seqs(set(member.streams()))
        try:
            # Bounded, so that a hung Redis cannot stop this socket's later beats.
            await asyncio.wait_for(
                member.heartbeat(latest),
                settings.BRIDGE_HEARTBEAT_INTERVAL,
            )
        except TimeoutError:
            logger.warning("heartbeat of one connection overran one interval")
        except Exception as exc:
            logger.warning("heartbeat of one connection failed: %r", exc)
        return True

    async def _register(self) -> None:
        """Once per interval per process, while it has connections."""
        interval = settings.BRIDGE_HEARTBEAT_INTERVAL
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + interval
        while self.members:
            await asyncio.sleep(max(0.0, next_beat - loop.time()))
            next_beat = max(next_beat + interval, loop.time())
            try:
                await instance_registry.register_this_instance()
            except (RedisError, OSError) as exc:
                logger.warning("could not register instance: %s", type(exc).__name__)
            except Exception:
                logger.exception("instance registration failed")


def install() -> None:
    """Make heartbeat_for_loop() build PerSocketHeartbeat (before any connection)."""
    if heartbeat._heartbeats:
        raise RuntimeError("a per-loop Heartbeat already exists; install earlier")
    heartbeat.Heartbeat = PerSocketHeartbeat  # type: ignore[misc, assignment]


install()
