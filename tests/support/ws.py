"""A small WebSocket client for end-to-end tests, built on `websockets`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

RECEIVE_TIMEOUT = 10.0


class Client:
    def __init__(self, connection: websockets.ClientConnection) -> None:
        self.connection = connection

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> Client:
        connection = await websockets.connect(url, open_timeout=10, **kwargs)
        return cls(connection)

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        return json.loads(raw)

    async def receive_type(self, frame_type: str, timeout: float = RECEIVE_TIMEOUT):
        """The next frame of `frame_type`, skipping heartbeat pings."""
        while True:
            frame = await self.receive(timeout)
            if frame["type"] == frame_type:
                return frame
            if frame["type"] != "ping":
                raise AssertionError(f"expected {frame_type}, got {frame}")

    async def send(self, frame: Any) -> None:
        await self.connection.send(
            frame if isinstance(frame, str | bytes) else json.dumps(frame)
        )

    async def close_code(self, timeout: float = RECEIVE_TIMEOUT) -> int | None:
        """Wait until the server closes; returns the close code."""
        try:
            while True:
                await asyncio.wait_for(self.connection.recv(), timeout)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    async def close(self) -> None:
        await self.connection.close()


async def connect_user(base_ws: str, user_id: str, **query: Any) -> tuple[Client, dict]:
    params = "&".join([f"user_id={user_id}", *(f"{k}={v}" for k, v in query.items())])
    client = await Client.connect(f"{base_ws}/ws?{params}")
    connected = await client.receive()
    assert connected["type"] == "connected", connected
    return client, connected


async def receive_messages(
    client: Client, count: int, timeout: float = RECEIVE_TIMEOUT
) -> list[dict[str, Any]]:
    """The next `count` message frames, skipping heartbeat pings; fails on others."""
    return [await client.receive_type("message", timeout) for _ in range(count)]


async def assert_no_message(client: Client, wait: float = 1.0) -> None:
    """Wait `wait` seconds and fail if any frame other than a ping arrives."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while (remaining := deadline - loop.time()) > 0:
        try:
            frame = await client.receive(remaining)
        except TimeoutError:
            return
        assert frame["type"] == "ping", f"expected no frame, got {frame}"
