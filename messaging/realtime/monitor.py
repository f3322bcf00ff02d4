"""`/ws/monitor`: the admin's Live connections page, live (issue 17).

Staff only: the browser's Django session authenticates the socket (4401
without one, 4403 for a user who is not staff or an Origin that may not
connect, as on `/ws`). Every MONITOR_INTERVAL it sends a `monitor` frame when
something changed (messaging/monitoring.py). One task per socket: a handful
of operators watch, not thousands of users, so the per-process heartbeat
timer of `/ws` is not needed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import DatabaseError

from messaging import frames
from messaging.monitoring import MonitorFeed
from messaging.realtime.handshake import request_headers
from messaging.realtime.origins import origin_allowed
from messaging.realtime.session_auth import session_user
from messaging.streams.publish import LayerUnavailable
from messaging.ws_database import run_db

logger = logging.getLogger(__name__)

# How often the cluster is looked at: a connection shows within this.
MONITOR_INTERVAL = 0.5


class MonitorConsumer(AsyncWebsocketConsumer):
    watching: asyncio.Task | None = None

    async def connect(self) -> None:
        await self.accept()
        refusal = await self._refusal()
        if refusal is not None:
            code, error, message = refusal
            await self.send(text_data=frames.encode(frames.error_frame(error, message)))
            await self.close(code=code)
            return
        self.watching = asyncio.get_running_loop().create_task(self._watch())

    async def _refusal(self) -> tuple[int, str, str] | None:
        headers = request_headers(self.scope)
        if not origin_allowed(
            headers.get("origin"),
            scope_scheme=self.scope.get("scheme", "ws"),
            host_header=headers.get("host", ""),
        ):
            return 4403, "forbidden", "this Origin may not connect"
        try:
            user = await run_db(session_user, self.scope)
        except DatabaseError:
            return 1013, "unavailable", "try again later"
        if not user.is_authenticated:
            return 4401, "unauthenticated", "log in to the admin first"
        if not user.is_staff:
            return 4403, "forbidden", "staff only"
        return None

    async def _watch(self) -> None:
        feed = MonitorFeed()
        down = False
        while True:
            try:
                frame = await feed.look()
                down = False
            except LayerUnavailable:
                frame = (
                    None
                    if down
                    else frames.error_frame(
                        "unavailable",
                        "Redis is unreachable; figures resume when it is back",
                    )
                )
                down = True
            if frame is not None:
                await self.send(text_data=frames.encode(frame))
            await asyncio.sleep(MONITOR_INTERVAL)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The page sends nothing; disconnects go through the HTTP API."""

    async def disconnect(self, code) -> None:
        if self.watching is not None:
            self.watching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.watching
