"""Bridge's own Redis connections (presence, limits), apart from the channel layer.

An asyncio Redis client belongs to the event loop that created it, so there is
one per running loop, as channels_redis does for the layer. Request threads
(the push views) use one blocking client shared by the process instead, so they
never wait on the event loop. Nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import threading
import weakref

import redis
from django.conf import settings
from redis import asyncio as aioredis

from bridge_project.redis_batching import CoalescingPipeline, Command, run_pipeline
from bridge_project.redis_reconnect import async_retry_once, retry_once

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def get_redis() -> aioredis.Redis:
    """The client of the running loop, created on first use."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=settings.BRIDGE_REDIS_MAX_CONNECTIONS,
            # Wait for a free connection rather than raise during connect bursts.
            timeout=settings.BRIDGE_LAYER_TIMEOUT,
            socket_connect_timeout=2,
            socket_timeout=settings.BRIDGE_LAYER_TIMEOUT,
            health_check_interval=15,
            # A connection left dead by a Redis restart is replaced, not
            # reported (bridge_project/redis_reconnect.py).
            retry=async_retry_once(),
        )
        client = aioredis.Redis(connection_pool=pool)
        _clients[loop] = client
    return client


_pipelines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CoalescingPipeline] = (
    weakref.WeakKeyDictionary()
)


def get_shared_pipeline() -> CoalescingPipeline:
    """The running loop's CoalescingPipeline over get_redis(): concurrent
    callers' commands share round trips."""
    loop = asyncio.get_running_loop()
    shared = _pipelines.get(loop)
    if shared is None:

        async def send(commands: list[Command]) -> list:
            return await run_pipeline(get_redis(), commands)

        shared = _pipelines[loop] = CoalescingPipeline(send)
    return shared


_blocking_clients: dict[tuple, redis.Redis] = {}
_blocking_clients_lock = threading.Lock()


def get_blocking_redis(timeout: float | None = None) -> redis.Redis:
    """The process's blocking client, for code running on a worker thread.

    Every read is bounded by `timeout`, BRIDGE_LAYER_TIMEOUT unless a caller
    needs less (rate limits), so a frozen Redis holds a request thread no
    longer than an asyncio caller's deadline would. One client per timeout."""
    key = (
        settings.REDIS_URL,
        settings.BRIDGE_REDIS_MAX_CONNECTIONS,
        settings.BRIDGE_LAYER_TIMEOUT if timeout is None else timeout,
    )
    client = _blocking_clients.get(key)
    if client is None:
        with _blocking_clients_lock:
            client = _blocking_clients.get(key)
            if client is None:
                client = _blocking_clients[key] = blocking_client(
                    key[0], max_connections=key[1], timeout=key[2]
                )
    return client


def blocking_client(
    url: str, *, max_connections: int, timeout: float, **options
) -> redis.Redis:
    """A thread-safe client whose waits, connects and reads are all bounded.

    A command that finds its pooled connection dead (Redis restarted since) is
    sent once more on a new one; a timeout is not retried, so a frozen Redis
    costs a caller one `timeout`, not several (bridge_project/redis_reconnect.py)."""
    options.setdefault("socket_connect_timeout", min(2.0, timeout))
    options.setdefault("retry", retry_once())
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        # How long a thread waits for a free connection.
        timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=15,
        **options,
    )
    return redis.Redis(connection_pool=pool)
