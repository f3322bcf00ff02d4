"""Tell every process that API keys changed, so that each clears its cache of
verified keys (accounts/key_cache.py) at once instead of within its TTL.

After a change to a key or an account commits, a PUBLISH on CHANNEL; every
server process listens there (one task per process, started on its first ASGI
event as messaging's instance_registry starts its own) and clears its cache on
each message, and on each (re)subscription too, since what was announced while
it was not subscribed is lost. If Redis is down the change still commits; it is
logged, and the TTL bounds how long other processes keep the key.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError

from accounts.key_cache import clear
from bridge_project.redis_client import get_blocking_redis
from bridge_project.redis_health import (
    open_subscription,
    resp_command,
    unless_cancelled,
)

logger = logging.getLogger(__name__)

CHANNEL = "bridge:api-keys:changed"
PUBLISH_TIMEOUT = 1.0  # a frozen Redis delays a revocation by no more than this
RECONNECT_SECONDS = 1.0
CONNECT_SECONDS = 2.0
# A listener that heard nothing for this long pings; no answer by the next
# period means a dead connection (a partition, not only a closed socket).
LIVENESS_SECONDS = 15.0


def invalidate(using: str | None = None) -> None:
    """Keys or accounts changed: clear this process's cache now and once the
    transaction commits (a lookup in between could see the old row), then
    tell the other processes."""
    clear()
    transaction.on_commit(_announce, using=using)


def _announce() -> None:
    clear()
    try:
        get_blocking_redis(timeout=PUBLISH_TIMEOUT).publish(CHANNEL, b"changed")
    except (RedisError, OSError) as exc:
        # The change is committed; other processes see it within the TTL.
        logger.warning(
            "API key change not announced to other processes (%s); "
            "their caches expire within BRIDGE_API_KEY_CACHE_SECONDS",
            type(exc).__name__,
        )


_listeners: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def ensure_listening() -> None:
    """Start this loop's listener unless it runs (idempotent, cheap). Only on
    the main thread's loop (daphne's), as messaging's instance_registry does."""
    if threading.current_thread() is not threading.main_thread():
        return
    if settings.BRIDGE_API_KEY_CACHE_SECONDS <= 0:
        return  # nothing is cached, nothing to clear
    loop = asyncio.get_running_loop()
    task = _listeners.get(loop)
    if task is None or task.done():
        for stale in [other for other in _listeners if other.is_closed()]:
            del _listeners[stale]
        _listeners[loop] = loop.create_task(listen(settings.REDIS_URL))


async def listen(url: str) -> None:
    """Clear the cache on every announcement on CHANNEL, until cancelled; and
    on every (re)subscription, since announcements may have been missed.

    A plain asyncio stream, as redis_health's watch: a redis-py PubSub here
    hung cancellation at a loop's shutdown while connecting, and would
    reconnect and resubscribe unseen."""
    failing = False
    while True:
        writer = None
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                reader, writer = await open_subscription(url, CHANNEL)
            clear()
            if failing:
                logger.info("listening for API key changes again")
            failing = False
            await _receive(reader, writer)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            unless_cancelled()
            clear()
            if not failing:
                logger.warning(
                    "lost the API key change listener's Redis connection (%s)",
                    type(exc).__name__,
                )
            failing = True
        finally:
            if writer is not None:
                writer.close()
        await asyncio.sleep(RECONNECT_SECONDS)


async def _receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    pinged = False
    while True:
        try:
            async with asyncio.timeout(LIVENESS_SECONDS):
                frame = await _read_frame(reader)
        except TimeoutError:
            if pinged:
                raise TimeoutError("no answer to a ping") from None
            writer.write(resp_command("PING"))
            pinged = True
            continue
        pinged = False
        if frame[0] == b"message":
            clear()


async def _read_frame(reader: asyncio.StreamReader) -> list[bytes]:
    """One RESP2 array of bulk strings and integers (all a subscribed
    connection receives)."""
    header = await reader.readline()
    if not header:
        raise ConnectionError("Redis closed the connection")
    if not header.startswith(b"*"):
        raise ValueError(f"unexpected reply from Redis: {header[:40]!r}")
    items = []
    for _ in range(int(header[1:])):
        line = await reader.readline()
        if line.startswith(b"$"):
            items.append((await reader.readexactly(int(line[1:]) + 2))[:-2])
        else:
            items.append(line[1:].rstrip())
    return items
