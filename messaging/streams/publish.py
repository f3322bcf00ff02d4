"""The one door to the channel layer (SPEC §5, §8).

Everything Bridge sends to other processes goes through `publish` (event loop)
or `publish_blocking` (request threads), always after the transaction that
stored it has committed. A failed or late publish trips the Redis circuit
(bridge_project/redis_health.py) and raises LayerUnavailable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import RedisError

from bridge_project import redis_health
from messaging.streams import groups
from messaging.streams.names import stream_group

logger = logging.getLogger(__name__)


class LayerUnavailable(Exception):
    """The channel layer (Redis) could not take the events in time."""


@dataclass(frozen=True)
class Outgoing:
    group: str
    event: dict[str, Any]


async def publish(outgoing: Sequence[Outgoing]) -> None:
    """Send layer events (one pipeline); raise LayerUnavailable past the deadline."""
    redis_health.ensure_watching()
    started_at = time.monotonic()
    layer = get_channel_layer()
    try:
        async with asyncio.timeout(settings.BRIDGE_LAYER_TIMEOUT):
            await layer.group_send_many((item.group, item.event) for item in outgoing)
    except (RedisError, OSError, TimeoutError) as exc:
        raise _layer_failed(exc, started_at) from exc
    redis_health.circuit.close()


def publish_blocking(outgoing: Sequence[Outgoing]) -> None:
    """publish, for a caller on a worker thread (the push views): the same
    events over the layer's blocking client, with no hand-off to the event
    loop; every read is bounded by BRIDGE_LAYER_TIMEOUT."""
    started_at = time.monotonic()
    layer = get_channel_layer()
    try:
        layer.group_send_many_blocking((item.group, item.event) for item in outgoing)
    except (RedisError, OSError) as exc:
        raise _layer_failed(exc, started_at) from exc
    redis_health.circuit.close()


async def run_script(group: str, script: str, keys: list[str], args: list) -> Any:
    """Run a Lua script on `group`'s shard, which may PUBLISH to the group
    (its channel is ARGV[1]): stream parts (streams/stream_state.py). Raises
    LayerUnavailable past the deadline."""
    redis_health.ensure_watching()
    started_at = time.monotonic()
    layer = get_channel_layer()
    try:
        async with asyncio.timeout(settings.BRIDGE_LAYER_TIMEOUT):
            reply = await layer.eval_for_group(group, script, keys, args)
    except (RedisError, OSError, TimeoutError) as exc:
        raise _layer_failed(exc, started_at) from exc
    redis_health.circuit.close()
    return reply


async def run_script_on_every_shard(script: str, keys: list[str], args: list) -> list:
    """Run a Lua script once on each shard of the layer (ARGV[1] is "")."""
    started_at = time.monotonic()
    layer = get_channel_layer()
    try:
        async with asyncio.timeout(settings.BRIDGE_LAYER_TIMEOUT):
            return await layer.eval_on_every_shard(script, keys, args)
    except (RedisError, OSError, TimeoutError) as exc:
        raise _layer_failed(exc, started_at) from exc


def _layer_failed(exc: BaseException, started_at: float) -> LayerUnavailable:
    redis_health.circuit.trip(started_at)
    logger.warning("channel layer unavailable: %s", type(exc).__name__)
    return LayerUnavailable(str(exc) or type(exc).__name__)


async def refuse_while_redis_is_down() -> None:
    """Raise LayerUnavailable at once while the watch knows Redis is down
    (never a wait on a dead Redis per frame); where nothing watches, or a
    probe is due, ask with a real publish."""
    circuit = redis_health.circuit
    if not redis_health.is_watched() or circuit.probe_due():
        await check_layer()  # closes the circuit, or raises
    elif circuit.is_open:
        raise LayerUnavailable("Redis is unreachable")


async def check_layer() -> None:
    """Round-trip a real publish through the layer; raises LayerUnavailable."""
    await publish([Outgoing(groups.HEALTH_GROUP, {"type": "bridge.health"})])


async def disconnect_user(user_id: str) -> None:
    """Ask every instance to close the user's connections (close code 4000)."""
    await publish(
        [Outgoing(groups.user_group(user_id), {"type": groups.DISCONNECT_EVENT})]
    )


async def end_subscriptions(*, user_id: str, topic: str, reason: str) -> None:
    """Ask every connection of the user, on every instance, to check again
    whether it may stay subscribed to `topic`, and to end the subscription
    with `reason` if not (SPEC §8: a removed member's `unsubscribed`)."""
    await publish([_recheck(user_id, topic, reason)])


def end_subscriptions_blocking(*, user_id: str, topic: str, reason: str) -> None:
    """end_subscriptions, for a caller on a worker thread (the membership API);
    raises LayerUnavailable."""
    publish_blocking([_recheck(user_id, topic, reason)])


def _recheck(user_id: str, topic: str, reason: str) -> Outgoing:
    event = {"type": groups.RECHECK_EVENT, "topic": topic, "reason": reason}
    return Outgoing(groups.user_group(user_id), event)


def topic_reset_blocking(topic: str) -> None:
    """Ask every subscription of the topic, on every instance, to end with
    reason `reset` (SPEC §9); raises LayerUnavailable."""
    event = {"type": groups.TOPIC_RESET_EVENT, "topic": topic}
    publish_blocking([Outgoing(stream_group(topic), event)])


def deliver_event(
    frame_text: str, *, stream: str | None, seq: int | None, exclude: str = ""
) -> dict[str, Any]:
    """The layer event that carries one message frame to a stream's group.

    The frame travels pre-encoded; user data is never spread into the event,
    so a `type` inside `data` cannot pick a consumer handler. `exclude` names
    the connection (channel) that published it, which does not get its own
    copy (SPEC §8 client publish)."""
    event: dict[str, Any] = {
        "type": groups.DELIVER_EVENT,
        "stream": stream,
        "seq": seq,
        "frame": frame_text,
    }
    if exclude:
        event["exclude"] = exclude
    return event


async def read_moved(
    *,
    user_id: str,
    frame_text: str,
    exclude: str,
    receipts: Sequence[tuple[str, str]] = (),
    topic: str | None = None,
    topic_receipt: str | None = None,
) -> None:
    """Tell the user's other connections, on every instance, that its read
    position moved (SPEC §9 `read`; the reading connection excluded), each
    (sender, receipt frame) in `receipts` its sender's connections, and
    `topic`'s subscribers its `topic_receipt`: live only, one pipeline;
    raises LayerUnavailable."""
    event = deliver_event(frame_text, stream=None, seq=None, exclude=exclude)
    outgoing = [Outgoing(groups.user_group(user_id), event)]
    for sender, text in receipts:
        receipt = deliver_event(text, stream=None, seq=None)
        outgoing.append(Outgoing(groups.user_group(sender), receipt))
    if topic is not None and topic_receipt is not None:
        receipt = deliver_event(topic_receipt, stream=topic, seq=None, exclude=exclude)
        outgoing.append(Outgoing(stream_group(topic), receipt))
    await publish(outgoing)
