"""Every Redis client of Bridge survives a Redis restart (issue 12 item 10).

Each client is used first with several connections at once, so that its pool
holds several; then the suite's real Redis is killed and started again, empty,
on the same port; the first commands afterwards must all succeed: each finds
its pooled connection dead and is sent again on a new one
(bridge_project/redis_reconnect.py). The end-to-end version, through daphne, is
tests/e2e/test_fault_redis_restart.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from channels.layers import get_channel_layer
from django.core.cache import cache

from bridge_project.embedded_redis import EmbeddedRedis
from bridge_project.redis_client import get_blocking_redis, get_redis
from messaging import presence

pytestmark = [pytest.mark.timeout(60)]

AT_ONCE = 5


async def _ping_async() -> object:
    return await get_redis().ping()


async def _presence_read() -> object:
    # The shared pipeline, over the same asyncio client.
    return await presence.connection_counts(["restart-reader"])


async def _ping_blocking() -> object:
    return await asyncio.to_thread(get_blocking_redis().ping)


async def _publish_async() -> object:
    return await get_channel_layer().group_send_many(
        [("restart-probe", {"type": "bridge.health"})]
    )


async def _publish_blocking() -> object:
    layer = get_channel_layer()
    return await asyncio.to_thread(
        layer.group_send_many_blocking, [("restart-probe", {"type": "bridge.health"})]
    )


CLIENTS: dict[str, Callable[[], Awaitable[object]]] = {
    "asyncio client (presence, operations)": _ping_async,
    "asyncio shared pipeline (presence counts)": _presence_read,
    "blocking client (push replies)": _ping_blocking,
    "channel layer publish (asyncio)": _publish_async,
    "channel layer publish (request threads)": _publish_blocking,
}


@pytest.mark.parametrize("use", CLIENTS.values(), ids=CLIENTS.keys())
async def test_first_commands_after_a_restart_succeed(
    redis_restartable: EmbeddedRedis, use: Callable[[], Awaitable[object]]
) -> None:
    await asyncio.gather(*(use() for _ in range(AT_ONCE)))

    redis_restartable.stop(kill=True)
    redis_restartable.start()

    outcomes = await asyncio.gather(
        *(use() for _ in range(AT_ONCE)), return_exceptions=True
    )
    assert [o for o in outcomes if isinstance(o, BaseException)] == []


def test_throttle_cache_survives_a_restart(redis_restartable: EmbeddedRedis) -> None:
    # The Django cache behind the HTTP throttles (settings.CACHES).
    cache.set("restart-probe", 1)

    redis_restartable.stop(kill=True)
    redis_restartable.start()

    assert cache.get("restart-probe") is None  # the new server is empty
    cache.set("restart-probe", 2)
    assert cache.get("restart-probe") == 2
