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
messages to one publisher per shard, which sends everything waiting as one
pipeline: a batch is one round trip, and pushes that arrive while a pipeline is
in flight share the next one.

This relies on channels_redis 4.x internals (`_get_shard`, the shard's `_lock`,
`_ensure_redis` and `_redis`); tests/integration/test_channel_layer.py checks
the behaviour against a real Redis.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer


class GroupPubSubChannelLayer(RedisPubSubChannelLayer):
    async def new_channel(self, prefix: str = "specific.") -> str:
        layer = self._get_layer()
        channel = f"{layer.prefix}{prefix}{uuid.uuid4().hex}"
        layer.channels[channel] = asyncio.Queue()
        return channel

    async def group_send_many(self, messages: Iterable[tuple[str, dict[str, Any]]]):
        """group_send each (group, message), in as few round trips as possible."""
        layer = self._get_layer()
        by_shard: dict[Any, list[tuple[str, bytes]]] = {}
        for group, message in messages:
            channel = layer._get_group_channel_name(group)
            by_shard.setdefault(layer._get_shard(channel), []).append(
                (channel, self.serialize(message))
            )
        await asyncio.gather(
            *(_publisher(shard).publish(items) for shard, items in by_shard.items())
        )


_publishers: weakref.WeakKeyDictionary[Any, _ShardPublisher] = (
    weakref.WeakKeyDictionary()
)


def _publisher(shard) -> _ShardPublisher:
    publisher = _publishers.get(shard)
    if publisher is None:
        publisher = _publishers[shard] = _ShardPublisher(shard)
    return publisher


def _consume_outcome(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class _ShardPublisher:
    """Sends whatever is waiting as one pipeline, one pipeline at a time."""

    def __init__(self, shard) -> None:
        self._shard = shard
        self._waiting: list[tuple[list[tuple[str, bytes]], asyncio.Future]] = []
        self._flushing = False
        self._flush_task: asyncio.Task | None = None

    async def publish(self, items: list[tuple[str, bytes]]) -> None:
        done = asyncio.get_running_loop().create_future()
        # Read the outcome even when the caller has stopped waiting for it.
        done.add_done_callback(_consume_outcome)
        self._waiting.append((items, done))
        if not self._flushing:
            self._flushing = True
            self._flush_task = asyncio.ensure_future(self._flush())
        # Shielded: a caller that gives up must not cancel the pipeline that
        # carries other callers' messages.
        await asyncio.shield(done)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._send([item for items, _ in batch for item in items])
                except BaseException as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._flushing = False
            for _, done in self._waiting:
                if not done.done():
                    done.set_exception(ConnectionError("publisher stopped"))
            self._waiting = []

    async def _send(self, items: list[tuple[str, bytes]]) -> None:
        shard = self._shard
        async with shard._lock:
            shard._ensure_redis()
            pipeline = shard._redis.pipeline(transaction=False)
            for channel, payload in items:
                pipeline.publish(channel, payload)
            await pipeline.execute()
