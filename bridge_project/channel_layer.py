"""The Redis pub/sub channel layer, minus per-connection Redis subscriptions.

Channels gives every consumer its own channel, and RedisPubSubChannelLayer
subscribes to each one in Redis. Bridge never sends to a single consumer's
channel, only to groups, so here a consumer's channel is a local queue: a
handshake saves a Redis round trip and Redis keeps one subscription per group
instead of one more per connection.
"""

from __future__ import annotations

import asyncio
import uuid

from channels_redis.pubsub import RedisPubSubChannelLayer


class GroupPubSubChannelLayer(RedisPubSubChannelLayer):
    async def new_channel(self, prefix: str = "specific.") -> str:
        layer = self._get_layer()
        channel = f"{layer.prefix}{prefix}{uuid.uuid4().hex}"
        layer.channels[channel] = asyncio.Queue()
        return channel
