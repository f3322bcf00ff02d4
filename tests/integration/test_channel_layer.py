"""The configured channel layer on the suite's real Redis (no mocks)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from redis.exceptions import RedisError

from messaging.streams import groups

RECEIVE_TIMEOUT = 5.0


async def _receive(layer, channel: str, timeout: float = RECEIVE_TIMEOUT) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def _assert_nothing_for(layer, channel: str, wait: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), wait)


async def test_configured_layer_is_redis_pubsub_not_in_memory():
    assert isinstance(get_channel_layer(), RedisPubSubChannelLayer)


async def test_group_send_reaches_a_channel_added_to_the_group():
    layer = get_channel_layer()
    member = await layer.new_channel()
    outsider = await layer.new_channel()
    await layer.group_add("it.members", member)
    event = {"type": "bridge.deliver", "seq": 7, "frame": '{"type":"message"}'}
    await layer.group_send("it.members", event)
    assert await _receive(layer, member) == event
    await _assert_nothing_for(layer, outsider)
    await layer.flush()


async def test_group_discard_stops_delivery():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("it.leavers", channel)
    await layer.group_discard("it.leavers", channel)
    await layer.group_send("it.leavers", {"type": "bridge.deliver", "seq": 1})
    await _assert_nothing_for(layer, channel)
    await layer.flush()


async def test_group_send_crosses_layer_instances_through_redis():
    """What two daphne processes rely on: the message goes through Redis."""
    receiving = get_channel_layer()
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    sending = RedisPubSubChannelLayer(**config)
    channel = await receiving.new_channel()
    await receiving.group_add("it.cross", channel)
    await sending.group_send("it.cross", {"type": "bridge.deliver", "seq": None})
    assert await _receive(receiving, channel) == {
        "type": "bridge.deliver",
        "seq": None,
    }
    await sending.flush()
    await receiving.flush()


async def test_group_send_many_reaches_every_group_in_order():
    layer = get_channel_layer()
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("it.many.a", first)
    await layer.group_add("it.many.b", second)
    await layer.group_send_many(
        [("it.many.a", {"type": "bridge.deliver", "seq": seq}) for seq in (1, 2, 3)]
        + [("it.many.b", {"type": "bridge.deliver", "seq": 9})]
    )
    assert [(await _receive(layer, first))["seq"] for _ in range(3)] == [1, 2, 3]
    assert (await _receive(layer, second))["seq"] == 9
    await layer.flush()


async def test_concurrent_group_send_many_calls_all_arrive_exactly_once():
    """Callers that arrive while a pipeline is in flight share the next one."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("it.many.concurrent", channel)
    await asyncio.gather(
        *(
            layer.group_send_many(
                [("it.many.concurrent", {"type": "bridge.deliver", "seq": seq})]
            )
            for seq in range(200)
        )
    )
    received = [(await _receive(layer, channel))["seq"] for _ in range(200)]
    assert sorted(received) == list(range(200))
    await _assert_nothing_for(layer, channel, wait=0.2)
    await layer.flush()


async def test_group_send_many_raises_when_redis_is_unreachable():
    config = {
        **settings.CHANNEL_LAYERS["default"]["CONFIG"],
        "hosts": [{"address": "redis://127.0.0.1:1", "socket_connect_timeout": 1}],
    }
    layer = type(get_channel_layer())(**config)
    with pytest.raises((RedisError, OSError)):
        await layer.group_send_many([("it.nowhere", {"type": "bridge.deliver"})])
    # The publisher is usable again afterwards: the next call fails the same
    # way instead of hanging on a flush that never ended.
    with pytest.raises((RedisError, OSError)):
        await asyncio.wait_for(
            layer.group_send_many([("it.nowhere", {"type": "bridge.deliver"})]), 5
        )


async def test_group_send_many_blocking_reaches_the_groups_group_send_many_does():
    """A request thread's publish lands where the event loop's would: same
    channel names, serialization and shard, received by the async layer."""
    layer = get_channel_layer()
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("it.blocking.a", first)
    await layer.group_add("it.blocking.b", second)
    await asyncio.to_thread(
        layer.group_send_many_blocking,
        [("it.blocking.a", {"type": "bridge.deliver", "seq": s}) for s in (1, 2, 3)]
        + [("it.blocking.b", {"type": "bridge.deliver", "seq": 9, "frame": "x"})],
    )
    assert [(await _receive(layer, first))["seq"] for _ in range(3)] == [1, 2, 3]
    assert await _receive(layer, second) == {
        "type": "bridge.deliver",
        "seq": 9,
        "frame": "x",
    }
    await _assert_nothing_for(layer, first, wait=0.2)
    await layer.flush()


async def test_group_send_many_blocking_raises_within_its_timeout_when_unreachable():
    config = {
        **settings.CHANNEL_LAYERS["default"]["CONFIG"],
        "hosts": [{"address": "redis://127.0.0.1:1", "socket_connect_timeout": 1}],
        "publish_timeout": 1.0,
    }
    layer = type(get_channel_layer())(**config)
    started = time.monotonic()
    with pytest.raises((RedisError, OSError)):
        await asyncio.to_thread(
            layer.group_send_many_blocking, [("it.nowhere", {"type": "bridge.deliver"})]
        )
    assert time.monotonic() - started < 3


@pytest.mark.django_db(transaction=True)
async def test_http_push_publishes_the_stored_message_to_the_user_group(
    async_client,
):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(groups.user_group("jay"), channel)
    response = await async_client.post(
        "/sse/push",
        {"user_id": "jay", "event": "notification", "data": {"n": 1}},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    event = await _receive(layer, channel)
    assert event["type"] == groups.DELIVER_EVENT
    assert event["seq"] == 1
    frame = json.loads(event["frame"])
    assert frame["id"] == response.json()["id"]
    assert (frame["to"], frame["seq"], frame["data"]) == ("jay", 1, {"n": 1})
    await layer.flush()


async def test_members_of_a_group_get_one_unpacking_as_copies_of_their_own():
    layer = get_channel_layer()
    members = [await layer.new_channel() for _ in range(3)]
    for member in members:
        await layer.group_add("it.shared", member)
    first = {"type": "bridge.deliver", "seq": 1, "frame": "one"}
    second = {"type": "bridge.deliver", "seq": 2, "frame": "two"}
    await layer.group_send("it.shared", first)
    await layer.group_send("it.shared", second)
    raws = [
        [await asyncio.wait_for(layer.inbox(m).get(), RECEIVE_TIMEOUT) for _ in "12"]
        for m in members
    ]
    assert raws[0][0] is raws[1][0] is raws[2][0], "one bytes object per message"
    # Interleaved as consumers may take them: each gets its own, right message.
    got = [layer.deserialize_shared(raws[m][i]) for i in (0, 1) for m in (0, 1, 2)]
    got.append(layer.deserialize_shared(raws[0][0]))
    assert got == [first] * 3 + [second] * 3 + [first]
    got[0]["seq"] = 99
    assert got[1]["seq"] == 1 and got[6]["seq"] == 1
    for member in members:
        await layer.group_discard("it.shared", member)
