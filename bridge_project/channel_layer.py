"""The Redis pub/sub channel layer, with local consumer channels and batched
publishes.

Channels gives every consumer its own channel, and RedisPubSubChannelLayer
subscribes to each one in Redis. Bridge never sends to a single consumer's
channel, only to groups, so here a consumer's channel is a local queue: a
handshake saves a Redis round trip and Redis keeps one subscription per group
instead of one more per connection.

RedisPubSubChannelLayer publishes one message per round trip, under a lock per
Redis connection, so concurrent pushes (and the hundred messages of a batch)
queued for that lock one round trip each. `group_send_many` instead hands its
messages to one CoalescingPipeline per shard: a batch is one round trip, and
pushes that arrive while a pipeline is in flight share the next one.

This relies on channels_redis 4.x internals (`_get_shard`, the shard's `_lock`,
`_ensure_redis` and `_redis`); tests/integration/test_channel_layer.py checks
the behaviour against a real Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer

from bridge_project.redis_batching import CoalescingPipeline, Command


class GroupPubSubChannelLayer(RedisPubSubChannelLayer):
    async def new_channel(self, prefix: str = "specific.") -> str:
        layer = self._get_layer()
        channel = f"{layer.prefix}{prefix}{uuid.uuid4().hex}"
        layer.channels[channel] = asyncio.Queue()
        return channel

    async def group_send_many(self, messages: Iterable[tuple[str, dict[str, Any]]]):
        """group_send each (group, message), in as few round trips as possible."""
        layer = self._get_layer()
        by_shard: dict[Any, list[Command]] = {}
        for group, message in messages:
            channel = layer._get_group_channel_name(group)
            by_shard.setdefault(layer._get_shard(channel), []).append(
                ("PUBLISH", channel, self.serialize(message))
            )
        await asyncio.gather(
            *(_publisher(shard).execute(items) for shard, items in by_shard.items())
        )


def _publisher(shard) -> CoalescingPipeline:
    """The shard's pipeline, kept on the shard: both belong to one event loop."""
    publisher = getattr(shard, "bridge_publisher", None)
    if publisher is None:

        async def send(commands: list[Command]) -> list[Any]:
            async with shard._lock:
                shard._ensure_redis()
                pipeline = shard._redis.pipeline(transaction=False)
                for command in commands:
                    pipeline.execute_command(*command)
                return await pipeline.execute()

        publisher = shard.bridge_publisher = CoalescingPipeline(send)
    return publisher
