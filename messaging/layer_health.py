"""Knowing, without asking on every push, whether Redis is reachable.

Each process keeps one idle connection to Redis subscribed to a channel nobody
publishes to. Redis going away closes that connection at once, which opens the
circuit; pushes then answer 503 before storing anything, so a 503 always means
"not accepted" (SPEC §6) at no cost per push while Redis is up. A publish that
fails opens it too (a network partition closes nothing). When the watch
connection is back, the circuit closes.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings
from redis import asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

WATCH_CHANNEL = "bridge:watch"
RECONNECT_SECONDS = 0.5


class LayerCircuit:
    def __init__(self) -> None:
        self.failed_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.failed_at is not None

    def trip(self) -> None:
        if self.failed_at is None:
            logger.warning("Redis unreachable: pushes answer 503 until it is back")
            self.failed_at = time.monotonic()

    def close(self) -> None:
        if self.failed_at is not None:
            logger.warning("Redis reachable again")
        self.failed_at = None


circuit = LayerCircuit()
_watchers: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def is_watched() -> bool:
    """Whether a watch task is alive; sync callers that run each call in a
    fresh loop (tests, management commands) have none and must ask Redis."""
    return any(
        not task.done() and not loop.is_closed() for loop, task in _watchers.items()
    )


def ensure_watching() -> None:
    """Start this loop's watch task if it is not running (idempotent, cheap)."""
    loop = asyncio.get_running_loop()
    task = _watchers.get(loop)
    if task is None or task.done():
        for stale in [other for other in _watchers if other.is_closed()]:
            del _watchers[stale]
        _watchers[loop] = loop.create_task(_watch())


async def _watch() -> None:
    pool = aioredis.ConnectionPool.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=2,
        socket_timeout=None,
        socket_keepalive=True,
    )
    while True:
        connection = pool.make_connection()
        try:
            await connection.connect()
            await connection.send_command("SUBSCRIBE", WATCH_CHANNEL)
            await connection.read_response()
            circuit.close()
            while True:  # returns only when the connection breaks
                await connection.read_response(timeout=None)
        except (RedisError, OSError):
            circuit.trip()
        finally:
            await connection.disconnect()
        await asyncio.sleep(RECONNECT_SECONDS)
