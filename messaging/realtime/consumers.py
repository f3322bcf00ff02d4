"""The WebSocket endpoint `/ws` (SPEC §2, §8): handshake, group membership,
frames in, layer events, cleanup. What goes out, in order and within the send
budget, is outbound.py; frames in are inbound.py; topic subscriptions are
subscriptions.py; the one-task event loop is single_task_consumer.py (all
here). Decisions live in the stream core (messaging/streams/)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from bridge_project import redis_health
from messaging import frames, metrics, presence
from messaging.event_log import log_event
from messaging.instance import INSTANCE_NAME
from messaging.realtime import ws_limits
from messaging.realtime.handshake import HandshakeRefused, authenticate, parse_handshake
from messaging.realtime.heartbeat import heartbeat_for_loop
from messaging.realtime.inbound import FrameReceiver
from messaging.realtime.outbound import StreamSender
from messaging.realtime.single_task_consumer import SingleTaskConsumer
from messaging.realtime.subscriptions import TopicSubscriber
from messaging.realtime.token_expiry import TokenExpiry
from messaging.streams import groups, history, reading
from messaging.streams.names import personal_stream
from messaging.ws_database import run_db

logger = logging.getLogger(__name__)

LAYER_ERRORS = (RedisError, OSError, TimeoutError)


def _unavailable() -> HandshakeRefused:
    return HandshakeRefused(1013, "unavailable", "try again later")


class BridgeConsumer(
    FrameReceiver, TopicSubscriber, TokenExpiry, StreamSender, SingleTaskConsumer
):
    connection_id = ""
    user_id: str | None = None
    close_code: int | None = None
    registered = False
    joined = False
    leaving = False
    left = False
    counted = False  # in the connections_open gauge
    # The personal stream's cursor at the last heartbeat (_stalled).
    cursor_at_beat = -1

    async def dispatch(self, message) -> None:
        try:
            await super().dispatch(message)
        except DatabaseError as error:
            await self._close_for_database_error(error)

    def client_event_arrived(self) -> None:
        # SPEC §2: any client frame proves liveness, counted on arrival: on a
        # process busy fanning out a topic, a pong can wait in the inbox for
        # longer than BRIDGE_HEARTBEAT_TIMEOUT behind deliveries (S6 closed
        # every client with 4408 before this).
        self.last_frame_at = time.monotonic()

    async def ended(self) -> None:
        # Whatever ended the loop (the client leaving, an error, a cancel), the
        # registry entry, groups and gauge must not outlive the socket.
        await self._leave(self.close_code or 1011)

    # --- lifecycle -------------------------------------------------------------

    async def connect(self) -> None:
        redis_health.ensure_watching()
        self.open_send_window()
        self.connection_id = uuid.uuid4().hex
        self.last_frame_at = time.monotonic()
        # Live events, resume and heartbeat catch-up all move the cursor.
        self.stream_lock = asyncio.Lock()
        self.subprotocol = None
        try:
            handshake = parse_handshake(self.scope)
            self.subprotocol = handshake.subprotocol
            await ws_limits.admit_address(ws_limits.client_address(self.scope))
            identity = await authenticate(handshake, self.scope)
            user_id = identity.user_id
            await ws_limits.admit_user(user_id)
            # Both are Redis round trips on different connections: overlap them.
            # A refused registration (4429) leaves the joined groups on disconnect.
            circuit = redis_health.circuit
            if (
                circuit.is_open
                and redis_health.is_watched()
                and not circuit.probe_due()
            ):
                raise _unavailable()
            outcomes = await asyncio.gather(
                self._register(user_id), self._join(user_id), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            newest, read = await self._personal_state(user_id)
        except HandshakeRefused as refusal:
            await self._refuse_handshake(refusal)
            return
        self.user_id = user_id
        self.topic_grants = identity.topic_grants
        self.expires_at = identity.expires_at
        self.stream = personal_stream(user_id)
        # Joined before reading `newest`: anything stored later is sent after our
        # subscription exists, so live delivery has no hole at the start. The lock
        # keeps the heartbeat's catch-up out until the resume is done.
        self.cursor = (
            newest if handshake.last_seq is None else min(handshake.last_seq, newest)
        )
        self.connected_at = time.monotonic()
        async with self.stream_lock:
            await self.accept(subprotocol=self.subprotocol)
            heartbeat_for_loop().add(self)
            self.counted = True
            log_event(
                "connect",
                user_id=user_id,
                connection_id=self.connection_id,
                instance=INSTANCE_NAME,
                remote_addr=self.connection.remote_addr,
            )
            metrics.connections_open.inc()
            metrics.connections_total.inc()
            await self._send_frame(
                frames.connected_frame(
                    connection_id=self.connection_id,
                    user_id=user_id,
                    heartbeat_interval=settings.BRIDGE_HEARTBEAT_INTERVAL,
                    last_seq=newest,
                    read_seq=read.read_seq,
                    unread=read.unread,
                    expires_at=self.expires_at,
                )
            )
            self.watch_expiry()
            if self.cursor < newest:
                await self._send_stored(
                    self.stream, upto_seq=newest, announce_truncation=True
                )

    async def disconnect(self, code: int) -> None:
        await self._leave(code)

    async def _leave(self, code: int) -> None:
        """Undo exactly what connect() did, once: on the client's disconnect, or
        from __call__'s finally when something else ended the consumer. Runs for
        refused handshakes too."""
        if self.left:
            return
        self.left = self.leaving = True
        heartbeat_for_loop().discard(self)
        self.forget_expiry()
        if self.counted:
            close_code = self.close_code or code
            metrics.connections_open.dec()
            metrics.disconnects_total.labels(code=str(close_code)).inc()
            log_event(
                "disconnect",
                user_id=self.user_id,
                connection_id=self.connection_id,
                instance=INSTANCE_NAME,
                code=close_code,
                duration_s=round(time.monotonic() - self.connected_at, 3),
            )
        try:
            await asyncio.wait_for(
                self._undo_registration(), settings.BRIDGE_LAYER_TIMEOUT
            )
        except LAYER_ERRORS:
            logger.info(
                "could not unregister %s: Redis unavailable", self.connection_id
            )

    async def _register(self, user_id: str) -> None:
        now = frames.now_text()
        self.connection = presence.ConnectionInfo(
            connection_id=self.connection_id,
            user_id=user_id,
            instance=INSTANCE_NAME,
            connected_at=now,
            last_seen=now,
            remote_addr=(self.scope.get("client") or ["", 0])[0] or "",
            user_agent=_header(self.scope, b"user-agent")[:256],
        )
        try:
            admitted = await asyncio.wait_for(
                presence.register(
                    self.connection, limit=settings.BRIDGE_MAX_CONNECTIONS_PER_USER
                ),
                settings.BRIDGE_LAYER_TIMEOUT,
            )
        except LAYER_ERRORS:
            raise _unavailable() from None
        if not admitted:
            limit = settings.BRIDGE_MAX_CONNECTIONS_PER_USER
            raise HandshakeRefused(
                4429, "too_many_connections", f"at most {limit} connections per user"
            )
        self.registered = True

    async def _join(self, user_id: str) -> None:
        self.joined_groups = [groups.user_group(user_id), groups.BROADCAST_GROUP]
        try:
            await asyncio.wait_for(self._add_to_groups(), settings.BRIDGE_LAYER_TIMEOUT)
        except LAYER_ERRORS:
            raise _unavailable() from None
        finally:
            self.joined = True  # even half-joined groups must be left

    async def _add_to_groups(self) -> None:
        for group in self.joined_groups:
            await self.channel_layer.group_add(group, self.channel_name)

    async def _personal_state(self, user_id: str) -> tuple[int, reading.Position]:
        try:
            return await run_db(_personal_state, user_id)
        except DatabaseError:
            logger.exception("database unavailable during handshake")
            raise _unavailable() from None

    async def _undo_registration(self) -> None:
        await self.leave_every_topic()
        if self.joined:
            for group in self.joined_groups:
                await self.channel_layer.group_discard(group, self.channel_name)
        if self.registered:
            await presence.unregister(self.connection)

    async def _refuse_handshake(self, refusal: HandshakeRefused) -> None:
        log_event(
            "handshake_refused",
            code=refusal.close_code,
            error=refusal.error_code,
            connection_id=self.connection_id,
            instance=INSTANCE_NAME,
        )
        # Accept first so that browsers can read the close code (SPEC §2).
        await self.accept(subprotocol=self.subprotocol)
        await self._close_with_error(
            refusal.close_code,
            refusal.error_code,
            refusal.message,
            retry_after_ms=refusal.retry_after_ms,
        )

    async def _close_with_error(
        self,
        close_code: int,
        error_code: str,
        message: str,
        *,
        retry_after_ms: int | None = None,
    ) -> None:
        if self.close_code is not None:
            return  # already closing: the first reason stands
        self.close_code = close_code
        await self._send_frame(
            frames.error_frame(error_code, message, retry_after_ms=retry_after_ms)
        )
        await self.close(code=close_code)

    async def _close_for_database_error(self, error: DatabaseError) -> None:
        """The store failed under a handler: 1013 during the handshake, else 1011."""
        logger.warning(
            "database error on connection %s (%s): closing",
            self.connection_id,
            type(error).__name__,
        )
        if self.user_id is None:
            await self._refuse_handshake(_unavailable())
        else:
            await self._close_with_error(1011, "unavailable", "try again later")

    # --- heartbeat (called by messaging.realtime.heartbeat) ---------------------

    def streams(self) -> list[str]:
        """Every stream this connection reads: its own, then its topics."""
        return [self.stream, *(self.topics or ())]

    async def heartbeat(self, latest: Mapping[str, int]) -> None:
        """Ping, re-join groups, and catch up on anything the live path missed;
        `latest` is the last seq handed out per stream."""
        if self.leaving or self.close_code is not None:
            return  # closing, or disconnect() has begun: re-joining would leak
        # With the pub/sub layer this is local bookkeeping once the group is
        # subscribed, so no per-connection timer; it re-subscribes if needed.
        with contextlib.suppress(*LAYER_ERRORS):
            await self._add_to_groups()
            await self.rejoin_topic_groups()
        await self._send_frame(frames.ping_frame())
        for stream in self.streams():
            newest = latest.get(stream, 0)
            cursor = self.cursor_of(stream)
            if cursor is None or not self._stalled(stream, cursor) or newest <= cursor:
                continue
            async with self.stream_lock:
                recovered = await self._send_stored(stream, upto_seq=newest)
            metrics.messages_recovered_total.inc(recovered)

    def _stalled(self, stream: str, cursor: int) -> bool:
        """Whether the stream's cursor has not moved since the last beat.

        Catch-up is for events that were lost (a Redis restart, a dropped
        subscription); events that are merely queued behind others move the
        cursor on their own. Reading the store for every subscriber of a busy
        topic whose events are queued was 70 % of a process's CPU in S6
        (docs/performance.md): each connection read and encoded the whole
        backlog again, then dropped the queued events as duplicates."""
        if stream == self.stream:
            previous, self.cursor_at_beat = self.cursor_at_beat, cursor
        else:
            state = self.topics[stream]
            previous, state.cursor_at_beat = state.cursor_at_beat, cursor
        return previous == cursor

    def go_away(self, retry_after_ms: int) -> None:
        """The process is shutting down (realtime/shutdown.py): close with 1001
        once whatever this connection is doing now is done, so that a message
        being stored still gets its ack."""
        self.channel_layer.inbox(self.channel_name).put_nowait(
            {"type": "bridge.going_away", "retry_after_ms": retry_after_ms}
        )

    async def heartbeat_timed_out(self) -> None:
        await self._close_with_error(
            4408, "heartbeat_timeout", "no frame received within the heartbeat timeout"
        )

    # --- events from the channel layer -------------------------------------------

    async def bridge_disconnect(self, event: dict) -> None:
        """An operator closed this user's connections (SPEC §6)."""
        if self.user_id is None:
            return
        await self._close_with_error(
            4000, "disconnected", "disconnected by an operator"
        )

    async def bridge_going_away(self, event: dict) -> None:
        """Queued by go_away(); never sent through the layer (SPEC §11)."""
        await self._close_with_error(
            1001,
            "going_away",
            "the server is shutting down; reconnect with last_seq",
            retry_after_ms=event["retry_after_ms"],
        )


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: refuse the handshake instead of raising."""

    async def connect(self) -> None:
        await self.close()


def _personal_state(user_id: str) -> tuple[int, reading.Position]:
    """The personal stream's newest seq, and the user's read position in it
    (SPEC §2, §9 `connected`): two queries, one trip to the database pool."""
    stream = personal_stream(user_id)
    return history.last_seq(stream), reading.position(user_id, stream)


def _header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""
