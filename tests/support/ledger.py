"""WebSocket clients that record every frame they receive, for fault tests.

A `LedgerClient` reads in the background, answers Bridge's JSON `ping` with a
`pong` (SPEC §2: any client frame counts as liveness; protocol-level pings do
not), and keeps a ledger of the message frames it got and when. Nothing is
asserted here: the test reads the ledger afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import websockets

CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Received:
    seq: int | None
    marker: Any
    at: float  # time.monotonic() when the frame was read


@dataclass
class LedgerClient:
    user_id: str
    label: str
    connection: websockets.ClientConnection
    connected: dict[str, Any]
    messages: list[Received] = field(default_factory=list)
    # Frames other than `message` and `ping` (history_truncated, error, ...).
    others: list[dict[str, Any]] = field(default_factory=list)
    pings: int = 0
    # Set when the connection ends: the close code the server sent, or "no close".
    closed: int | str | None = None
    _reader: asyncio.Task | None = None

    @classmethod
    async def open(
        cls, base_ws: str, user_id: str, label: str, **query: Any
    ) -> LedgerClient:
        params = "&".join(
            [f"user_id={user_id}", *(f"{k}={v}" for k, v in query.items())]
        )
        connection = await websockets.connect(
            f"{base_ws}/ws?{params}", open_timeout=CONNECT_TIMEOUT, ping_interval=None
        )
        raw = await asyncio.wait_for(connection.recv(), CONNECT_TIMEOUT)
        connected = json.loads(raw)
        if connected.get("type") != "connected":
            await connection.close()
            raise AssertionError(f"{label}: expected connected, got {connected}")
        client = cls(user_id, label, connection, connected)
        client._reader = asyncio.create_task(client._read())
        return client

    @property
    def open_now(self) -> bool:
        return (
            self.closed is None and self._reader is not None and not self._reader.done()
        )

    async def ended(self) -> None:
        """Wait until the connection has ended (`closed` says how)."""
        if self._reader is not None:
            await asyncio.wait([self._reader])

    def markers(self) -> list[Any]:
        return [m.marker for m in self.messages]

    def seqs(self) -> list[int | None]:
        return [m.seq for m in self.messages]

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                now = time.monotonic()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "ping":
                    self.pings += 1
                    await self.connection.send(json.dumps({"type": "pong"}))
                elif kind == "message":
                    data = frame.get("data")
                    marker = data.get("marker") if isinstance(data, dict) else None
                    self.messages.append(Received(frame.get("seq"), marker, now))
                else:
                    self.others.append(frame)
        except websockets.ConnectionClosed as closed:
            self.closed = closed.rcvd.code if closed.rcvd is not None else "no close"
        else:
            # A close with 1000 or 1001 ends the iteration instead of raising.
            received = self.connection.protocol.close_rcvd
            self.closed = received.code if received is not None else "ended"

    async def close(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connection.close(), 5)
