"""A client that stops reading its socket (bench/soak.py, issue 12 item 2).

Bridge must not buffer without bound for it: SPEC §11 closes a connection
with 4008 `slow_client` once more than BRIDGE_MAX_PENDING_BYTES wait to be
written to it. This client stops reading, keeps proving liveness by writing
`pong` frames blind (so the heartbeat timeout, 4408, is not what ends it),
and at the end reads what is left to learn how the server ended it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import websockets
from websockets.exceptions import ConnectionClosed

SLOW_USER = "soak-slow"
# SPEC §2: any client frame proves liveness; a pong needs no reply.
_PONG = '{"type":"pong"}'


@dataclass
class SlowReader:
    url: str
    seconds: float
    # Called just before it reads again: what the server holds for it then.
    snapshot: Callable[[], dict] | None = None
    server_before_drain: dict | None = None
    ws: websockets.ClientConnection | None = None
    pushed: int = 0
    pushed_bytes: int = 0
    frames_read: int = 0
    last_error: str | None = None
    close_code: int | None = None
    ended: str = "not started"

    async def run(
        self, http_url: str, rate: float, size_kb: int, *, start_after: float = 0.0
    ) -> None:
        """Wait `start_after` seconds (past the soak's warm-up), connect, stop
        reading for `seconds` while pushes pile up, then drain."""
        await asyncio.sleep(start_after)
        # max_queue=1: websockets stops reading the socket once one message
        # waits unread, so the server's writes back up into its own buffers.
        self.ws = await websockets.connect(
            self.url, ping_interval=None, max_queue=1, compression=None, max_size=None
        )
        self.ended = "open, not reading"
        payload = {
            "user_id": SLOW_USER,
            "event": "soak",
            "data": {"x": "x" * size_kb * 1024},
        }
        body = json.dumps(payload).encode()
        deadline = time.monotonic() + self.seconds
        async with httpx.AsyncClient(timeout=30) as http:
            next_pong = time.monotonic()
            while time.monotonic() < deadline:
                reply = await http.post(
                    f"{http_url}/sse/push",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                if reply.status_code == 202:
                    self.pushed += 1
                    self.pushed_bytes += len(body)
                if time.monotonic() >= next_pong:
                    next_pong += 20
                    with contextlib.suppress(ConnectionClosed):
                        await self.ws.send(_PONG)
                await asyncio.sleep(1 / rate)
        if self.snapshot is not None:
            self.server_before_drain = self.snapshot()
        await self.drain()

    async def drain(self) -> None:
        """Read everything left, to see how the server ended the connection."""
        assert self.ws is not None
        try:
            while True:
                raw = await asyncio.wait_for(self.ws.recv(), 15)
                self.frames_read += 1
                frame = json.loads(raw)
                if frame.get("type") == "error":
                    self.last_error = frame.get("code")
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd else None
            self.ended = (
                f"closed with {self.close_code}"
                if self.close_code
                else "dropped without a close frame (1006)"
            )
        except TimeoutError:
            self.ended = "still open after draining (never closed)"
            await self.ws.close()
