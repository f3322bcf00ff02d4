"""Topic subscriptions of one connection (SPEC §8): `subscribe`, `unsubscribe`,
recovery with `since`, join/leave, and ending a subscription when a membership
is removed.

`TopicSubscriber` is a part of BridgeConsumer (messaging/realtime/consumers.py);
decisions (who may subscribe, what a namespace allows) are the stream core's
(messaging/streams/topics.py), sending in order is StreamSender's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from messaging import frames, metrics, presence, topic_presence
from messaging.realtime.client_frames import ClientFrame, FrameError
from messaging.realtime.outbound import TopicState
from messaging.streams import history, reading, topics
from messaging.streams.names import stream_group
from messaging.streams.namespaces import NamespaceRules
from messaging.streams.publish import (
    LayerUnavailable,
    Outgoing,
    deliver_event,
    publish,
)
from messaging.ws_database import run_db

logger = logging.getLogger(__name__)

LAYER_ERRORS = (RedisError, OSError, TimeoutError)
CLIENT = "client"
# SPEC §9: a topic reset ends every subscription of the topic.
RESET = "reset"


class TopicSubscriber:
    user_id: str | None
    connection: presence.ConnectionInfo
    topics: dict[str, TopicState] | None
    # Topics (and `ns:*` patterns) the connection's token grants (SPEC §8).
    topic_grants: tuple[str, ...] = ()

    async def on_subscribe(self, frame: ClientFrame) -> None:
        topic = frame.topic
        again = bool(self.topics) and topic in self.topics
        if not again and len(self.topics or ()) >= settings.BRIDGE_MAX_SUBSCRIPTIONS:
            raise FrameError(
                "too_many_subscriptions",
                f"at most {settings.BRIDGE_MAX_SUBSCRIPTIONS} subscriptions "
                "per connection",
                frame.ref,
                topic=topic,
            )
        rules = await self._admitted(topic, frame.ref)
        first = False
        if not again:
            first = await self._join_topic(topic, frame.ref)
        newest, read = None, None
        if not rules.live_only:
            newest, read = await run_db(_topic_state, self.user_id, topic)
        async with self.stream_lock:
            if self.close_code is not None:
                if not again:  # closing: what was joined must not linger
                    await self._undo_join(topic)
                return
            state = (self.topics or {}).get(topic)
            cursor = newest or 0
            if frame.since is not None and newest is not None:
                cursor = min(frame.since, newest)
            elif state is not None:
                # Subscribing again without `since` changes nothing: messages
                # already on their way still arrive.
                cursor = state.cursor
            recovered = await self._recoverable(topic, frame.since, cursor, newest)
            if state is None:
                if self.topics is None:
                    self.topics = {}
                state = self.topics[topic] = TopicState(cursor=cursor, rules=rules)
                metrics.subscriptions_open.inc()
            else:
                state.cursor, state.rules = cursor, rules
            await self._send_frame(
                frames.subscribed_frame(
                    topic=topic,
                    seq=newest,
                    recovered=recovered,
                    ref=frame.ref,
                    read_seq=read.read_seq if read else None,
                    unread=read.unread if read else None,
                )
            )
            if newest is not None and cursor < newest:
                await self._send_stored(
                    topic,
                    upto_seq=newest,
                    announce_truncation=True,
                    include_own=frame.since is not None,
                )
        if first and rules.join_leave:
            await self._announce("join", topic)

    async def on_unsubscribe(self, frame: ClientFrame) -> None:
        await self._end_subscription(frame.topic, CLIENT, ref=frame.ref)

    async def bridge_topic_reset(self, event: dict) -> None:
        """The topic's kept messages were deleted (SPEC §9): the subscription
        ends with reason `reset`; the client may subscribe again."""
        topic = event["topic"]
        if self.user_id is None or not self.topics or topic not in self.topics:
            return
        await self._end_subscription(topic, RESET)

    async def bridge_recheck_subscription(self, event: dict) -> None:
        """A membership of this user was removed (SPEC §8): end the
        subscription unless something else still admits it (a token grant,
        a public namespace)."""
        topic = event["topic"]
        if self.user_id is None or not self.topics or topic not in self.topics:
            return
        try:
            await run_db(
                topics.may_subscribe,
                user_id=self.user_id,
                topic=topic,
                grants=self.topic_grants,
            )
        except topics.TopicRefused:
            await self._end_subscription(topic, event["reason"])

    # --- steps ---------------------------------------------------------------------

    async def _admitted(self, topic: str, ref: str | None) -> NamespaceRules:
        try:
            return await run_db(
                topics.may_subscribe,
                user_id=self.user_id,
                topic=topic,
                grants=self.topic_grants,
            )
        except topics.TopicRefused as refused:
            raise FrameError(refused.code, refused.message, ref, topic=topic) from None
        except DatabaseError:
            raise FrameError(
                "unavailable", "try again later", ref, topic=topic
            ) from None

    async def _join_topic(self, topic: str, ref: str | None) -> bool:
        """Join the topic's group, then its presence; True when this is the
        user's first connection in the topic (a `join` is due)."""
        try:
            async with asyncio.timeout(settings.BRIDGE_LAYER_TIMEOUT):
                await self.channel_layer.group_add(
                    stream_group(topic), self.channel_name
                )
                return await topic_presence.subscribe(topic, self.connection)
        except LAYER_ERRORS:
            with contextlib.suppress(*LAYER_ERRORS):
                await self.channel_layer.group_discard(
                    stream_group(topic), self.channel_name
                )
            raise FrameError(
                "unavailable", "try again later", ref, topic=topic
            ) from None

    async def _recoverable(
        self, topic: str, since: int | None, cursor: int, newest: int | None
    ) -> bool:
        """Whether every message after `since` is still kept (SPEC §8
        `recovered`): always without `since`, never for a live-only topic."""
        if since is None:
            return True
        if newest is None:
            return False
        if cursor >= newest:
            return True
        page = await run_db(history.frames_after, topic, after_seq=cursor, limit=1)
        return bool(page) and page[0].seq == cursor + 1

    async def _end_subscription(
        self, topic: str, reason: str, *, ref: str | None = None
    ) -> None:
        """Leave the topic and tell the client (`unsubscribed`). Unsubscribing
        from a topic this connection does not hold is answered the same way."""
        state = self.topics.pop(topic, None) if self.topics else None
        await self._send_frame(
            frames.unsubscribed_frame(topic=topic, reason=reason, ref=ref)
        )
        if state is not None:
            await self._leave_topic(topic, state.rules)

    async def _leave_topic(self, topic: str, rules: NamespaceRules) -> None:
        metrics.subscriptions_open.dec()
        if await self._undo_join(topic) and rules.join_leave:
            await self._announce("leave", topic)

    async def _undo_join(self, topic: str) -> bool:
        """Leave the topic's group and presence; True when that was the user's
        last connection in the topic (a `leave` is due)."""
        try:
            async with asyncio.timeout(settings.BRIDGE_LAYER_TIMEOUT):
                await self.channel_layer.group_discard(
                    stream_group(topic), self.channel_name
                )
                return await topic_presence.unsubscribe(topic, self.connection)
        except LAYER_ERRORS:
            # Presence expires by itself within two heartbeat intervals.
            logger.info("could not leave %s: Redis unavailable", topic)
            return False

    async def leave_every_topic(self) -> None:
        """On disconnect: every subscription ends (leave frames included)."""
        held, self.topics = self.topics or {}, None
        # Together: a hundred topics one after another could outlast the
        # disconnect's BRIDGE_LAYER_TIMEOUT on a slow Redis.
        await asyncio.gather(
            *(self._leave_topic(topic, state.rules) for topic, state in held.items())
        )

    async def rejoin_topic_groups(self) -> None:
        """The heartbeat's re-join, for a Redis that lost its subscriptions."""
        for topic in list(self.topics or ()):
            await self.channel_layer.group_add(stream_group(topic), self.channel_name)

    async def _announce(self, kind: str, topic: str) -> None:
        """Publish `join`/`leave` to the topic's subscribers, live only; this
        connection gets no copy of its own."""
        frame = frames.encode(
            frames.presence_change_frame(kind, topic=topic, user_id=self.user_id)
        )
        event = deliver_event(frame, stream=topic, seq=None, exclude=self.channel_name)
        with contextlib.suppress(LayerUnavailable):
            await publish([Outgoing(stream_group(topic), event)])


def _topic_state(user_id: str, topic: str) -> tuple[int, reading.Position | None]:
    """The topic's current last seq, and the user's read position when a
    member (SPEC §8, §9 `subscribed`): two queries, one trip to the database
    pool."""
    return history.current_seq(topic), reading.member_position(user_id, topic)
