"""CoalescingPipeline on the suite's real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import RedisError

from bridge_project.redis_batching import CoalescingPipeline, run_pipeline
from bridge_project.redis_client import get_redis, get_shared_pipeline
from tests.support.ids import fresh_user_id


def counting_pipeline(
    sending: asyncio.Event | None = None,
) -> tuple[CoalescingPipeline, list[int]]:
    """A CoalescingPipeline over the real client that records each pipeline's
    size and sets `sending` when one leaves."""
    sizes: list[int] = []

    async def send(commands):
        sizes.append(len(commands))
        if sending is not None:
            sending.set()
        return await run_pipeline(get_redis(), commands)

    return CoalescingPipeline(send), sizes


async def test_a_lone_caller_gets_its_own_replies_in_order():
    key = fresh_user_id("batch")
    replies = await get_shared_pipeline().execute(
        [("SET", key, "v"), ("GET", key), ("DEL", key)]
    )
    assert replies == [True, b"v", 1]


async def test_callers_arriving_together_share_one_pipeline():
    pipeline, sizes = counting_pipeline()
    key = fresh_user_id("batch")
    replies = await asyncio.gather(
        *(pipeline.execute([("INCR", key), ("GET", key)]) for _ in range(100))
    )
    counters = [incremented for incremented, _ in replies]
    assert sorted(counters) == list(range(1, 101))
    # Each caller's replies are its own: the GET right after its INCR.
    assert all(int(value) == n for n, value in replies)
    assert sizes == [200]
    await get_redis().delete(key)


async def test_callers_arriving_while_a_pipeline_is_out_share_the_next_one():
    sending = asyncio.Event()
    pipeline, sizes = counting_pipeline(sending)
    key = fresh_user_id("batch")
    first = asyncio.ensure_future(pipeline.execute([("INCR", key)]))
    await sending.wait()  # the first pipeline is on its way to Redis
    later = await asyncio.gather(
        *(pipeline.execute([("INCR", key)]) for _ in range(50))
    )
    assert await first == [1]
    assert sorted(n for (n,) in later) == list(range(2, 52))
    assert sizes == [1, 50]
    await get_redis().delete(key)


async def test_a_failed_pipeline_fails_its_callers_and_the_next_call_works():
    pipeline, _ = counting_pipeline()
    key = fresh_user_id("batch")
    await get_redis().set(key, "not a number")
    with pytest.raises(RedisError):
        await pipeline.execute([("INCR", key)])
    assert await pipeline.execute([("GET", key)]) == [b"not a number"]
    await get_redis().delete(key)


async def test_a_caller_that_gives_up_does_not_cancel_the_others():
    pipeline, _ = counting_pipeline()
    key = fresh_user_id("batch")
    first = asyncio.ensure_future(pipeline.execute([("INCR", key)]))
    second = asyncio.ensure_future(pipeline.execute([("INCR", key)]))
    await asyncio.sleep(0)
    first.cancel()
    assert await second in ([1], [2])
    # The cancelled caller's command was already on its way and still ran.
    await asyncio.sleep(0.05)
    assert int(await get_redis().get(key)) == 2
    await get_redis().delete(key)
