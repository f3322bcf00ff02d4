"""Bridge's own Redis connections (presence, limits), apart from the channel layer.

An asyncio Redis client belongs to the event loop that created it, so there is
one per running loop, as channels_redis does for the layer. Nothing connects at
import time.
"""

from __future__ import annotations

import asyncio
import weakref

from django.conf import settings
from redis import asyncio as aioredis

from bridge_project.redis_batching import CoalescingPipeline, Command, run_pipeline

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
