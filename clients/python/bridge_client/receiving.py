"""Frames from the server, and stored messages in order (SPEC §2, §11).

Each stored message is queued for the handlers once: a seq at or below the
last one queued for its stream is a duplicate (a resume may send it again) and
is dropped. When the handlers fall behind and the queue fills, the client stops
taking stored messages, lets the handlers work through half the queue, then
closes and resumes from the last one queued, so nothing is lost or handled
twice. Live-only frames (`seq: null`, signals, stream parts) skip the filter.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from bridge_client.connection import Connection
from bridge_client.dispatch import Event
from bridge_client.errors import FrameRefused
from bridge_client.events import Truncated
from bridge_client.message import PERSONAL, Message, StreamPart, stream_key
from bridge_client.refresh import TokenRefresh
from bridge_client.topics import Topics

logger = logging.getLogger(__name__)

# Our own close after the queue overflowed; we resume at once.
RESUME_CLOSE = 1000


class Receiving(Topics, TokenRefresh):
    """The part of `Client` that reads what the server sends."""

    stats: dict[str, int]
    _overflowing: bool
    _resume_now: bool

    async def _on_frame(self, connection: Connection, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ping":
            await connection.socket.send('{"type":"pong"}')
            await self._ack_handled(connection)
        elif kind == "message":
            self._on_message(connection, frame)
        elif kind == "stream":
            self._emit_live(
                "stream", StreamPart.from_frame(frame), self._handlers["stream"]
            )
        elif kind in ("ack", "refreshed"):
            self._resolve(frame)
        elif kind == "subscribed":
            self._on_subscribed(frame)
        elif kind == "unsubscribed":
            self._on_unsubscribed(frame)
        elif kind == "history_truncated":
            stream = frame.get("topic") or PERSONAL
            self._emit("history_truncated", Truncated(stream, int(frame["oldest_seq"])))
        elif kind == "error":
            self._on_error(connection, frame)
        elif kind == "token_expiring":
            self._start_refresh(frame)
        elif kind in ("signal", "read", "receipt", "recall", "join", "leave"):
            self._emit_live(str(kind), frame, self._handlers[str(kind)])

    async def _ack_handled(self, connection: Connection) -> None:
        """Tell the server how far the handlers got (`ack`, SPEC §2), at most
        once a heartbeat: operators see it as the connection's `acked_seq`."""
        handled = self._handled.personal
        if handled is not None and handled > connection.acked:
            connection.acked = handled
            await connection.socket.send(json.dumps({"type": "ack", "seq": handled}))

    def _on_message(self, connection: Connection, frame: dict[str, Any]) -> None:
        stream = stream_key(frame)
        subscription = self._subscriptions.get(stream) if stream != PERSONAL else None
        if stream != PERSONAL and subscription is None:
            # Sent before our unsubscribe reached the server: the app left.
            self.stats["after_unsubscribe"] += 1
            return
        handlers = (
            [subscription.handler]
            if subscription is not None and subscription.handler is not None
            else list(self._handlers["message"])
        )
        message = Message.from_frame(frame)
        seq = frame.get("seq")
        if seq is None:
            self._emit_live("message", message, handlers)
            return
        if self._overflowing:
            self.stats["dropped_for_resume"] += 1
            return
        last = self._queued.get(stream)
        if last is not None and seq <= last:
            self.stats["duplicates_dropped"] += 1
            return
        if self._dispatcher.full():
            self._overflow(connection)
            return
        self._queued.advance(stream, seq)

        def admit() -> bool:
            handled = self._handled.get(stream)
            return handled is None or seq > handled

        def done() -> None:
            self._handled.advance(stream, seq)

        self._dispatcher.put(Event("message", message, handlers, done, admit))

    def _overflow(self, connection: Connection) -> None:
        """The queue is full: stop taking stored messages, and once the handlers
        have worked through half of it, reconnect and resume from the last one
        queued (nothing lost, nothing twice)."""
        self._overflowing = True
        self.stats["overflows"] += 1
        self.stats["dropped_for_resume"] += 1
        logger.warning(
            "bridge_client: %s events waiting for handlers; resuming later",
            self._dispatcher.qsize(),
        )

        async def resume() -> None:
            await self._dispatcher.wait_below(self._dispatcher.maxsize // 2)
            self._resume_now = True
            await connection.socket.close(RESUME_CLOSE, "resume after overflow")

        connection.tasks.append(asyncio.create_task(resume()))

    def _on_error(self, connection: Connection, frame: dict[str, Any]) -> None:
        ref = frame.get("ref")
        if ref is None:
            # Unsolicited: the reason for a close that may follow (its
            # retry_after_ms says when to come back, SPEC §11).
            connection.last_error = frame
        if ref is not None and ref in self._pending:
            future = self._pending[ref]
            if not future.done():
                future.set_exception(FrameRefused(frame))
            return
        if ref is not None and ref in self._parts:
            self._parts[ref]._refused(FrameRefused(frame))
            return
        topic = frame.get("topic")
        if topic in self._subscriptions and not self._subscriptions[topic].active:
            self._refuse_subscription(self._subscriptions.pop(topic), frame)
            return
        self._emit("error", frame)
