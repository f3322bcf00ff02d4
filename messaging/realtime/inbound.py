"""Frames from the client (SPEC §2, §8): size check, parse, per-type handler,
refusals. `FrameReceiver` is a part of BridgeConsumer
(messaging/realtime/consumers.py); `subscribe`/`unsubscribe` are
TopicSubscriber's (subscriptions.py)."""

from __future__ import annotations

import logging
import time
from collections import deque

from django.conf import settings
from django.db import DatabaseError

from accounts.identifiers import is_user_id
from bridge_project.rate_limits import ConnectionWindow
from messaging import frames, metrics
from messaging.event_log import log_event
from messaging.instance import INSTANCE_NAME
from messaging.realtime import client_frames, ws_limits
from messaging.realtime.client_frames import ClientFrame, FrameError
from messaging.streams import (
    live_messages,
    publish,
    reading,
    signals,
    streaming,
    topics,
)
from messaging.streams.live_messages import ClientMessage
from messaging.streams.namespaces import NamespaceRules
from messaging.streams.recipients import RoutingRefused
from messaging.streams.topics import TopicRefused
from messaging.ws_database import run_db

logger = logging.getLogger(__name__)

REFUSALS_BEFORE_CLOSE = 20
# Streams whose rules this connection checked (BRIDGE_MAX_OPEN_STREAMS are
# open at once; finished ones are forgotten, idle-finished ones linger).
_STREAMS_REMEMBERED = 100
REFUSAL_WINDOW_SECONDS = 60.0


class FrameReceiver:
    user_id: str | None
    close_code: int | None
    # Made on first use: an empty deque is 760 B, and most connections never
    # send a frame. `message` frames count per user in Redis (ws_limits).
    refusals: deque[float] | None = None
    control_frames: ConnectionWindow | None = None
    # stream id -> target, for the streams this connection was allowed to
    # send (SPEC §9): the rules are checked on a stream's first part only.
    stream_targets: dict[str, tuple[str, str | None]] | None = None

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.user_id is None:
            return
        self.last_frame_at = time.monotonic()
        if _too_large(text_data, bytes_data):
            if self.close_code is None:
                self.close_code = 1009
                await self.close(code=1009)
            return
        try:
            frame = client_frames.parse_client_frame(text_data)
            if frame.type in ws_limits.CONTROL_FRAME_TYPES:
                if self.control_frames is None:
                    self.control_frames = ConnectionWindow()
                ws_limits.count_control_frame(
                    self.control_frames, frame.ref, frame.topic
                )
            await getattr(self, f"on_{frame.type}")(frame)
        except FrameError as error:
            await self._refuse_frame(error)

    async def on_ping(self, frame: ClientFrame) -> None:
        await self._send_frame(frames.pong_frame())

    async def on_pong(self, frame: ClientFrame) -> None:
        """Any frame proves liveness; a pong needs no reply."""

    async def on_ack(self, frame: ClientFrame) -> None:
        self.connection.acked_seq = frame.seq

    async def on_disconnect(self, frame: ClientFrame) -> None:
        if self.close_code is None:
            self.close_code = 1000
            await self.close(code=1000)

    async def on_message(self, frame: ClientFrame) -> None:
        await ws_limits.count_client_message(self.user_id, frame.ref)
        if frame.to is not None and not is_user_id(frame.to):
            raise FrameError("invalid_frame", "'to' must be a user id", frame.ref)
        if frame.topic is not None:
            await self._may_publish(frame)
        message = ClientMessage(
            sender=self.user_id,
            text=frame.text,
            data=frame.data,
            to=frame.to,
            topic=frame.topic,
            channel=self.channel_name,
        )
        try:
            receipt = await live_messages.send_client_message(message)
        except (RoutingRefused, TopicRefused) as refused:
            raise FrameError(refused.code, refused.message, frame.ref) from None
        except (publish.LayerUnavailable, DatabaseError):
            raise FrameError("unavailable", "try again later", frame.ref) from None
        log_event(
            "client_message",
            user_id=self.user_id,
            connection_id=self.connection_id,
            instance=INSTANCE_NAME,
            message_id=receipt.message_id,
            recipients=len(receipt.recipients),
        )
        await self._acknowledge(frame, receipt)

    async def on_signal(self, frame: ClientFrame) -> None:
        """SPEC §9: delivered at once, never stored; no reply unless refused."""
        await ws_limits.count_client_signal(self.user_id, frame.ref)
        signal = signals.ClientSignal(
            sender=self.user_id,
            event=frame.event,
            data=frame.data,
            to=frame.to,
            topic=frame.topic,
            channel=self.channel_name,
            subscribed=(
                frame.topic is not None and self.cursor_of(frame.topic) is not None
            ),
        )
        try:
            await signals.send_signal(signal)
        except RoutingRefused as refused:
            raise FrameError(refused.code, refused.message, frame.ref) from None
        except TopicRefused as refused:
            raise FrameError(
                refused.code, refused.message, frame.ref, topic=frame.topic
            ) from None
        except (publish.LayerUnavailable, DatabaseError):
            raise FrameError("unavailable", "try again later", frame.ref) from None

    async def on_stream(self, frame: ClientFrame) -> None:
        """SPEC §9: a part of a message sent in parts, to a user or a topic
        under the rules of a `message`; counted as a signal. Parts get no
        reply; the final one an `ack` of the stored message."""
        await ws_limits.count_client_signal(self.user_id, frame.ref)
        to = await self._may_stream(frame)
        part = streaming.StreamPart(
            scope=f"c.{self.connection_id}",
            stream_id=frame.stream_id,
            sender=self.user_id,
            to=to,
            topic=frame.topic,
            delta=frame.delta,
            final=frame.final,
            data=frame.data,
            exclude=self.channel_name,
        )
        try:
            accepted = await streaming.send_part(part)
        except streaming.PartRefused as refused:
            raise FrameError(refused.code, refused.message, frame.ref) from None
        except (publish.LayerUnavailable, DatabaseError):
            raise FrameError("unavailable", "try again later", frame.ref) from None
        if not accepted.final:
            return
        self.stream_targets.pop(frame.stream_id, None)
        receipt = accepted.receipt
        if receipt is None:
            return  # stored already, by the sweep of an idle stream
        await self._acknowledge(frame, receipt)

    async def _acknowledge(self, frame: ClientFrame, receipt) -> None:
        """`ack` a stored client message (a `message` frame, a stream's final
        part); a topic's seq moves this connection's cursor past its own."""
        if receipt.topic is not None:
            self.published(receipt.topic, receipt.topic_seq)
        await self._send_frame(
            frames.ack_frame(
                ref=frame.ref,
                message_id=receipt.message_id,
                recipients=[r.user_id for r in receipt.recipients],
                topic=receipt.topic,
                seq=receipt.topic_seq,
            )
        )

    async def _may_stream(self, frame: ClientFrame) -> str | None:
        """The rules of a `message` to the same target, checked on a stream's
        first part from this connection; returns the addressee's canonical
        id (None for a topic)."""
        asked = frame.topic or frame.to
        if self.stream_targets is None:
            self.stream_targets = {}
        known = self.stream_targets.get(frame.stream_id)
        if known is not None and known[0] == asked:
            return known[1]
        to = None
        try:
            if frame.topic is not None:
                await self._may_publish(frame)
            else:
                to = await run_db(signals.may_address, self.user_id, frame.to)
        except RoutingRefused as refused:
            raise FrameError(refused.code, refused.message, frame.ref) from None
        except DatabaseError:
            raise FrameError("unavailable", "try again later", frame.ref) from None
        if len(self.stream_targets) >= _STREAMS_REMEMBERED:
            self.stream_targets.clear()  # idle-finished streams never said goodbye
        self.stream_targets[frame.stream_id] = (asked, to)
        return to

    async def on_read(self, frame: ClientFrame) -> None:
        """SPEC §9: move the user's read position forward; no reply. When it
        moved, the user's other connections get a `read` frame, and (personal
        stream) the senders of the messages it moved past a `receipt`; in a
        namespace with `receipts`, a member's read gives the topic's
        subscribers one."""
        topic = frame.topic
        rules = None
        if topic is not None:
            state = self.topics.get(topic) if self.topics else None
            rules = state.rules if state else await self._may_read(frame)
        receipts: list[reading.Receipt] = []
        topic_receipt = False
        try:
            if topic is None:
                moved, receipts = await run_db(
                    reading.read_personal, self.user_id, frame.seq
                )
            else:
                moved, topic_receipt = await run_db(
                    reading.read_topic,
                    self.user_id,
                    topic,
                    frame.seq,
                    receipts=rules.receipts,
                )
        except DatabaseError:
            raise FrameError(
                "unavailable", "try again later", frame.ref, topic=topic
            ) from None
        if moved is None:
            return
        text = frames.encode(frames.read_frame(seq=moved, topic=topic))
        receipt_texts = [
            (
                receipt.sender,
                frames.encode(
                    frames.receipt_frame(
                        user_id=self.user_id,
                        message_ids=receipt.message_ids,
                        seq=moved,
                    )
                ),
            )
            for receipt in receipts
        ]
        try:
            await publish.read_moved(
                user_id=self.user_id,
                frame_text=text,
                exclude=self.channel_name,
                receipts=receipt_texts,
                topic=topic,
                topic_receipt=(
                    frames.encode(
                        frames.topic_receipt_frame(
                            topic=topic, user_id=self.user_id, seq=moved
                        )
                    )
                    if topic_receipt
                    else None
                ),
            )
        except publish.LayerUnavailable:
            # The position is stored: other connections read it on connect.
            logger.info("read position of %s not synced: Redis down", self.user_id)

    async def _may_read(self, frame: ClientFrame) -> NamespaceRules:
        """A topic this connection is not subscribed to: the user must be
        allowed to subscribe to it; its namespace's rules."""
        try:
            return await run_db(
                topics.may_subscribe,
                user_id=self.user_id,
                topic=frame.topic,
                grants=self.topic_grants,
            )
        except topics.TopicRefused as refused:
            raise FrameError(
                refused.code, refused.message, frame.ref, topic=frame.topic
            ) from None
        except DatabaseError:
            raise FrameError(
                "unavailable", "try again later", frame.ref, topic=frame.topic
            ) from None

    async def _may_publish(self, frame: ClientFrame) -> None:
        try:
            await run_db(
                topics.may_publish,
                user_id=self.user_id,
                topic=frame.topic,
                subscribed=self.cursor_of(frame.topic) is not None,
            )
        except TopicRefused as refused:
            raise FrameError(
                refused.code, refused.message, frame.ref, topic=frame.topic
            ) from None

    async def _refuse_frame(self, error: FrameError) -> None:
        metrics.frames_refused_total.labels(code=error.code).inc()
        log_event(
            "frame_refused",
            user_id=self.user_id,
            connection_id=self.connection_id,
            instance=INSTANCE_NAME,
            code=error.code,
        )
        now = time.monotonic()
        if self.refusals is None:
            self.refusals = deque()
        self.refusals.append(now)
        while self.refusals and now - self.refusals[0] > REFUSAL_WINDOW_SECONDS:
            self.refusals.popleft()
        if len(self.refusals) >= REFUSALS_BEFORE_CLOSE:
            await self._close_with_error(4400, "bad_request", "too many refused frames")
            return
        await self._send_frame(
            frames.error_frame(
                error.code,
                error.message,
                error.ref,
                retry_after_ms=error.retry_after_ms,
                topic=error.topic,
            )
        )


def _too_large(text_data: str | None, bytes_data: bytes | None) -> bool:
    limit = settings.BRIDGE_MAX_FRAME_BYTES
    if bytes_data is not None:
        return len(bytes_data) > limit
    if text_data is None or len(text_data) * 4 <= limit:
        return False
    return len(text_data) > limit or len(text_data.encode("utf-8")) > limit
