"""This instance's entry in the cluster-wide list of instances (SPEC §6
`GET /api/stats`): name, start time, open connections and counters.

Written as soon as the process serves anything (its first ASGI event of any
kind: a health check, a request, a handshake), then kept fresh for as long as
the process lives: again whenever its connection count changed, and at least
once per BRIDGE_HEARTBEAT_INTERVAL, with or without connections. The entry
expires two intervals after the last write, so a crashed process drops out by
itself.

Until this existed the entry was written only by the connections' heartbeat:
a new process was missing from `/api/stats` (and its connections from
`total_connections`) until its first beat, up to one interval after its first
connection, and a process serving only HTTP dropped out two intervals after its
last connection closed.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from django.conf import settings
from redis.exceptions import RedisError

from accounts import key_changes
from bridge_project.redis_health import unless_cancelled
from messaging import metrics, presence
from messaging.instance import INSTANCE_NAME, STARTED_AT
from messaging.realtime import stream_sweeper
from messaging.realtime.heartbeat import local_connection_count

logger = logging.getLogger(__name__)

# How often the connection count is looked at (a sum over local sets): a change
# reaches /api/stats within this, and a burst of handshakes costs one write per
# check, not one per handshake.
CHECK_SECONDS = 0.5

_registrations: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
# Loops whose process is leaving (realtime/shutdown.py): never registered again,
# or the record removed on the way out would come back.
_stopped: set[asyncio.AbstractEventLoop] = set()


async def register_this_instance() -> None:
    """Publish this process's name, start time, connections and counters;
    nothing once the process has begun to leave (its record is being removed)."""
    if asyncio.get_running_loop() in _stopped:
        return
    await presence.register_instance(
        INSTANCE_NAME,
        started_at=STARTED_AT,
        connections=local_connection_count(),
        **metrics.local_totals(),
    )


def ensure_registered() -> None:
    """Start this loop's registration task unless it runs (idempotent, cheap).

    Only on the main thread's loop (daphne's): a loop on another thread is
    asgiref's throwaway loop for one sync call."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    if loop in _stopped:
        return
    task = _registrations.get(loop)
    if task is None or task.done():
        for stale in [other for other in _registrations if other.is_closed()]:
            del _registrations[stale]
        _registrations[loop] = loop.create_task(_keep_registered())


def stop_registering() -> asyncio.Task | None:
    """No more writes of this loop's record (the process is leaving); returns
    the cancelled task, for the caller to await before removing the record."""
    loop = asyncio.get_running_loop()
    _stopped.add(loop)
    task = _registrations.pop(loop, None)
    if task is not None:
        task.cancel()
    return task


async def _keep_registered() -> None:
    interval = settings.BRIDGE_HEARTBEAT_INTERVAL
    loop = asyncio.get_running_loop()
    written: tuple[int, float] | None = None  # (connections, when)
    failing = False
    while True:
        count = local_connection_count()
        if (
            written is None
            or count != written[0]
            or loop.time() - written[1] >= interval
        ):
            try:
                async with asyncio.timeout(settings.BRIDGE_LAYER_TIMEOUT):
                    await register_this_instance()
            except (RedisError, OSError, TimeoutError) as exc:
                unless_cancelled()
                # Tried again at the next check; said once, not every check.
                written = None
                if not failing:
                    logger.warning(
                        "could not register this instance: %s", type(exc).__name__
                    )
                failing = True
            else:
                unless_cancelled()
                written = (count, loop.time())
                failing = False
        await asyncio.sleep(CHECK_SECONDS)


class RegisteringApplication:
    """An ASGI application that registers the instance on its first event,
    and starts the process's sweep of idle streamed messages and its listener
    for API key changes (accounts/key_changes.py)."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        ensure_registered()
        stream_sweeper.ensure_sweeping()
        key_changes.ensure_listening()
        return await self.application(scope, receive, send)
