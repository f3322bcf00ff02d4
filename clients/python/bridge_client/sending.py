"""Frames to the server: messages, signals, reads, and messages sent in parts
(SPEC §2, §9)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterable, Iterable
from typing import Any

from websockets.exceptions import ConnectionClosed

from bridge_client.connection import ClientBase, Connection
from bridge_client.errors import FrameRefused, StreamInterrupted


class Sending(ClientBase):
    """The part of `Client` that sends frames to the server."""

    async def send_message(
        self,
        text: str,
        *,
        to: str | None = None,
        topic: str | None = None,
        data: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """A client `message` (SPEC §2, §8); returns its `ack` (`id`,
        `recipients`, and `topic`/`seq` for a topic)."""
        frame: dict[str, Any] = {"type": "message", "text": text}
        for key, value in (("to", to), ("topic", topic), ("data", data)):
            if value is not None:
                frame[key] = value
        return await self._request(frame, timeout)

    async def signal(
        self,
        event: str,
        *,
        to: str | None = None,
        topic: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """A live-only signal such as typing (SPEC §9); no answer unless refused
        (the refusal comes as an `error` event)."""
        frame: dict[str, Any] = {"type": "signal", "event": event}
        for key, value in (("to", to), ("topic", topic), ("data", data)):
            if value is not None:
                frame[key] = value
        await self.send_frame(frame)

    async def read(self, seq: int, *, topic: str | None = None) -> None:
        """The user has read its personal stream (or `topic`) up to `seq`."""
        frame: dict[str, Any] = {"type": "read", "seq": seq}
        if topic is not None:
            frame["topic"] = topic
        await self.send_frame(frame)

    def stream(
        self,
        *,
        to: str | None = None,
        topic: str | None = None,
        stream_id: str | None = None,
    ) -> OutgoingStream:
        """A message sent in parts (SPEC §9), as an async context manager:

        ```python
        async with client.stream(to="alice") as reply:
            await reply.send("Hel")
            await reply.send("lo")
        ```
        Leaving the block sends the final part (with `data: {"aborted": true}`
        when the block raised)."""
        if (to is None) == (topic is None):
            raise ValueError("give exactly one of to and topic")
        target = {"to": to} if to is not None else {"topic": str(topic)}
        return OutgoingStream(self, stream_id or uuid.uuid4().hex[:16], target)

    async def send_stream(
        self,
        parts: AsyncIterable[str] | Iterable[str],
        *,
        to: str | None = None,
        topic: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send every part of `parts` (an async generator, say), then the final
        part; returns the final part's `ack`."""
        async with self.stream(to=to, topic=topic) as outgoing:
            if isinstance(parts, AsyncIterable):
                async for delta in parts:
                    await outgoing.send(delta)
            else:
                for delta in parts:
                    await outgoing.send(delta)
            return await outgoing.finish(data=data)


class OutgoingStream:
    """One streamed message being sent; see `Client.stream`."""

    def __init__(self, client: Sending, stream_id: str, target: dict[str, str]) -> None:
        self.client = client
        self.stream_id = stream_id
        self.target = target
        self.ack: dict[str, Any] | None = None
        self._connection: Connection | None = None
        self._error: Exception | None = None
        self._finished = False

    def _refused(self, error: FrameRefused) -> None:
        self._error = error

    def _frame(self, **fields: Any) -> dict[str, Any]:
        return {"type": "stream", "stream_id": self.stream_id, **self.target, **fields}

    async def _check(self) -> Connection:
        if self._error is not None:
            raise self._error
        connection = await self.client._wait_connected(None)
        if self._connection is None:
            self._connection = connection
        elif connection is not self._connection:
            raise StreamInterrupted(f"stream {self.stream_id} lost its connection")
        return connection

    async def send(self, delta: str) -> None:
        """Send one part (a non-empty string). Raises the refusal of an earlier
        part, if the server refused one."""
        connection = await self._check()
        ref = f"p{next(self.client._refs)}"
        self.client._parts[ref] = self
        try:
            await connection.socket.send(json.dumps(self._frame(delta=delta, ref=ref)))
        except ConnectionClosed:
            raise StreamInterrupted("the connection closed while sending") from None

    async def finish(
        self,
        delta: str = "",
        *,
        data: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send the final part; returns its `ack`."""
        if self._finished:
            raise RuntimeError(f"stream {self.stream_id} is already finished")
        self._finished = True
        await self._check()
        fields: dict[str, Any] = {"final": True}
        if delta:
            fields["delta"] = delta
        if data is not None:
            fields["data"] = data
        self.ack = await self.client._request(self._frame(**fields), timeout)
        return self.ack

    async def __aenter__(self) -> OutgoingStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, *rest: object
    ) -> None:
        if self._finished or self._error is not None or exc_type is StreamInterrupted:
            return
        if exc_type is None:
            await self.finish()
        else:
            with contextlib.suppress(Exception):
                await self.finish(data={"aborted": True})
