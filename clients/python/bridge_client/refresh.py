"""Token expiry during a connection (SPEC §10): ask the token provider for a new
token when the server warns (`token_expiring`) or, as a fallback, shortly before
`expires_at`, and send it as `refresh`."""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import datetime
from typing import Any

from bridge_client.connection import ClientBase

logger = logging.getLogger(__name__)


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class TokenRefresh(ClientBase):
    """The part of `Client` that keeps its token fresh."""

    async def _provide_token(self) -> str | None:
        assert self._token_provider is not None
        token = self._token_provider()
        if inspect.isawaitable(token):
            token = await token
        return token

    async def _refresh_before(self, expires_at: str, server_time: str) -> None:
        """The fallback timer: refresh `refresh_margin` s before expiry if the
        server's `token_expiring` did not come (it normally comes 60 s before)."""
        left = _parse_time(expires_at) - _parse_time(server_time)
        await asyncio.sleep(max(0.0, left - self.refresh_margin))
        if self.expires_at == expires_at:
            self._start_refresh({"type": "token_expiring", "expires_at": expires_at})

    def _start_refresh(self, frame: dict[str, Any]) -> None:
        # Once per expiry: the server's warning and the fallback timer may both
        # come for the same one.
        if frame.get("expires_at") == self._expiring_for:
            return
        self._expiring_for = frame.get("expires_at")
        if self._token_provider is None:
            self._emit("token_expiring", frame)
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            token = await self._provide_token()
            if not token:
                return
            self._token = token
            reply = await self._request({"type": "refresh", "token": token})
        except Exception as failed:  # the 4401 that follows is handled as a close
            logger.warning("bridge_client: token refresh failed: %r", failed)
            return
        self.stats["refreshes"] += 1
        self.expires_at = reply.get("expires_at")
        connection = self._connection
        if connection is not None and self.expires_at:
            now = datetime.now().astimezone().isoformat()
            connection.tasks.append(
                asyncio.create_task(self._refresh_before(self.expires_at, now))
            )
