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

The sync views (recall, topic operations) run on request threads;
`group_send_many_blocking` publishes the
same messages to the same channels and shards over a blocking client, so a
request thread does not hand its publish to the event loop and wait for it
(that round trip between threads cost more CPU than the publish itself).

The stream parts of SPEC §9 are published by Lua scripts run on a group's
shard (`eval_for_group`), which assign each part its index and publish it in
one atomic step.

This relies on channels_redis 4.x internals (`_get_shard`, `_shards`, the
shard's `_lock`, `_ensure_redis` and `_redis`; for the blocking path `_consistent_hash`,
`decode_hosts` and the `<prefix>__group__<group>` channel names);
tests/integration/test_channel_layer.py checks the behaviour against a real
Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections import deque
from collections.abc import Iterable
from typing import Any

import redis
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import _consistent_hash, decode_hosts

from bridge_project.redis_batching import (
    CoalescingPipeline,
    Command,
    run_pipeline,
    run_pipeline_blocking,
)
from bridge_project.redis_client import blocking_client


class GroupPubSubChannelLayer(RedisPubSubChannelLayer):
    def __init__(self, *args, publish_timeout: float = 3.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._publish_timeout = publish_timeout
        self._last_unpacked: tuple[bytes | None, dict[str, Any]] = (None, {})
        self._prefix = kwargs.get("prefix", "asgi")
        self._hosts = decode_hosts(kwargs.get("hosts"))
        self._blocking_clients: list[Any] = [None] * len(self._hosts)
        self._blocking_clients_lock = threading.Lock()

    async def new_channel(self, prefix: str = "specific.") -> str:
        layer = self._get_layer()
        channel = f"{layer.prefix}{prefix}{uuid.uuid4().hex}"
        layer.channels[channel] = ChannelInbox()
        return channel

    def inbox(self, channel: str) -> ChannelInbox:
        """Where the layer puts `channel`'s messages, still serialized."""
        return self._get_layer().channels[channel]

    def deserialize_shared(self, raw: bytes) -> dict[str, Any]:
        """A message from the layer, unpacked once for all its receivers.

        A group's message reaches every member's inbox as the same bytes
        object (channels_redis' `_receive_message`), and each consumer used
        to unpack it again: 0.8 µs of msgpack per delivery, 3 % of a topic's
        fan-out. Each caller gets its own shallow copy to keep."""
        last_raw, message = self._last_unpacked  # one read: loops may share us
        if last_raw is not raw:
            message = self.deserialize(raw)
            self._last_unpacked = (raw, message)
        return dict(message)

    def close_channel(self, channel: str) -> None:
        """Forget a channel from new_channel (nothing to unsubscribe in Redis)."""
        self._get_layer().channels.pop(channel, None)

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

    def group_send_many_blocking(
        self, messages: Iterable[tuple[str, dict[str, Any]]]
    ) -> None:
        """group_send_many for a caller on a worker thread: one pipeline per
        shard, each read bounded by `publish_timeout`. Raises redis-py's errors."""
        by_shard: dict[int, list[Command]] = {}
        for group, message in messages:
            # RedisPubSubLoopLayer's _get_group_channel_name and _get_shard.
            channel = f"{self._prefix}__group__{group}"
            shard = _consistent_hash(channel, len(self._hosts))
            by_shard.setdefault(shard, []).append(
                ("PUBLISH", channel, self.serialize(message))
            )
        for shard, commands in by_shard.items():
            run_pipeline_blocking(self._blocking_client(shard), commands)

    async def eval_for_group(
        self, group: str, script: str, keys: list[str], args: list[Any]
    ) -> Any:
        """Run a Lua script on the Redis shard of `group`, with the group's
        pub/sub channel as ARGV[1] before `args`: whatever it PUBLISHes there
        reaches the group's members in script order. It shares the shard's
        publish pipeline, so a script must return its errors as values."""
        layer = self._get_layer()
        channel = layer._get_group_channel_name(group)
        (reply,) = await _publisher(layer._get_shard(channel)).execute(
            [("EVAL", script, len(keys), *keys, channel, *args)]
        )
        return reply

    async def eval_on_every_shard(
        self, script: str, keys: list[str], args: list[Any]
    ) -> list[Any]:
        """Run a Lua script once on each Redis shard (ARGV[1] is ""); the
        replies in shard order."""
        layer = self._get_layer()
        replies = await asyncio.gather(
            *(
                _publisher(shard).execute(
                    [("EVAL", script, len(keys), *keys, "", *args)]
                )
                for shard in layer._shards
            )
        )
        return [reply for (reply,) in replies]

    def _blocking_client(self, shard: int):
        client = self._blocking_clients[shard]
        if client is None:
            with self._blocking_clients_lock:
                client = self._blocking_clients[shard]
                if client is None:
                    client = self._blocking_clients[shard] = _blocking_client_for(
                        self._hosts[shard], self._publish_timeout
                    )
        return client


# Host settings that blocking_client sets itself: the subscriber's unbounded
# reads must not apply to publishing, and its retry policy is the asyncio one.
_POOL_SETS = (
    "address",
    "socket_timeout",
    "max_connections",
    "health_check_interval",
    "retry",
)


def _blocking_client_for(host: dict[str, Any], timeout: float) -> redis.Redis:
    """A blocking client for one of the layer's hosts."""
    options = {key: value for key, value in host.items() if key not in _POOL_SETS}
    return blocking_client(
        host["address"],
        max_connections=host.get("max_connections", 1000),
        timeout=timeout,
        **options,
    )


class ChannelInbox:
    """One consumer channel's messages, in arrival order, for whoever awaits them.

    It takes the place of the asyncio.Queue that RedisPubSubChannelLayer keeps
    per channel, of which the layer uses only `put_nowait` and `get`. An empty
    asyncio.Queue holds three deques and an Event with a fourth, each with its
    64-slot block: about 3 KB for every open connection. This holds a deque only
    while messages wait and a future only while a reader does.
    """

    __slots__ = ("_messages", "_readers")

    def __init__(self) -> None:
        self._messages: deque[Any] | None = None
        self._readers: list[asyncio.Future] | None = None

    def put_nowait(self, message: Any) -> None:
        if self._messages is None:
            self._messages = deque()
        self._messages.append(message)
        self._wake_next_reader()

    async def get(self) -> Any:
        while not self._messages:
            reader = asyncio.get_running_loop().create_future()
            if self._readers is None:
                self._readers = []
            self._readers.append(reader)
            try:
                await reader
            except BaseException:
                reader.cancel()  # in case it is still pending
                with contextlib.suppress(ValueError):
                    self._readers.remove(reader)
                # Woken for a message it will not take now: pass it on.
                if self._messages and not reader.cancelled():
                    self._wake_next_reader()
                raise
        message = self._messages.popleft()
        if not self._messages:
            self._messages = None
        return message

    def _wake_next_reader(self) -> None:
        while self._readers:
            reader = self._readers.pop(0)
            if not reader.done():
                reader.set_result(None)
                return


def _publisher(shard) -> CoalescingPipeline:
    """The shard's pipeline, kept on the shard: both belong to one event loop."""
    publisher = getattr(shard, "bridge_publisher", None)
    if publisher is None:

        async def send(commands: list[Command]) -> list[Any]:
            async with shard._lock:
                shard._ensure_redis()
                return await run_pipeline(shard._redis, commands)

        publisher = shard.bridge_publisher = CoalescingPipeline(send)
    return publisher
