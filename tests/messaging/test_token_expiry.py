"""A connection's handling of its token deadlines (messaging/realtime/
token_expiry.py, SPEC §10): an event queued for a token that a `refresh`
replaced meanwhile does nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest

from messaging.realtime.expiry import EXPIRE, WARN
from messaging.realtime.token_expiry import TokenExpiry

pytestmark = pytest.mark.timeout(10)


class Connection(TokenExpiry):
    """TokenExpiry with the consumer's sending parts recorded."""

    def __init__(self, expires_at: float | None) -> None:
        self.user_id = "alice"
        self.close_code = None
        self.expires_at = expires_at
        self.sent: list[dict[str, Any]] = []
        self.closed: list[tuple[int, str]] = []

    async def _send_frame(self, frame: dict[str, Any]) -> None:
        self.sent.append(frame)

    async def _close_with_error(self, close_code: int, error_code: str, _: str) -> None:
        self.closed.append((close_code, error_code))


async def test_a_due_warning_is_sent_once_per_token():
    connection = Connection(time.time() + 30)
    await connection.bridge_token_deadline({"kind": WARN})
    await connection.bridge_token_deadline({"kind": WARN})
    assert [frame["type"] for frame in connection.sent] == ["token_expiring"]


async def test_a_warning_queued_before_a_refresh_is_not_sent_for_the_new_token():
    connection = Connection(time.time() + 3600)  # refreshed meanwhile
    await connection.bridge_token_deadline({"kind": WARN})
    assert connection.sent == []


async def test_an_expiry_queued_before_a_refresh_does_not_close():
    connection = Connection(time.time() + 3600)
    await connection.bridge_token_deadline({"kind": EXPIRE})
    assert connection.closed == []


async def test_an_expired_token_closes_with_4401_token_expired():
    connection = Connection(time.time() - 0.01)
    await connection.bridge_token_deadline({"kind": EXPIRE})
    assert connection.closed == [(4401, "token_expired")]


async def test_a_connection_without_expiry_ignores_deadlines():
    connection = Connection(None)
    await connection.bridge_token_deadline({"kind": EXPIRE})
    assert (connection.sent, connection.closed) == ([], [])
