"""What the client tells the application besides messages: its state, a
resume that found messages gone, and topic subscriptions."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

from bridge_client.dispatch import Handler


class State(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


@dataclass(frozen=True)
class StateChange:
    """Payload of the `state` event."""

    state: State
    # For DISCONNECTED: the close code (None when no connection was made) and the
    # `error` frame the server sent just before, if any.
    code: int | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class Truncated:
    """Payload of `history_truncated`: messages of `stream` before `oldest_seq`
    were no longer kept when the client resumed (SPEC §5)."""

    stream: str  # a topic, or PERSONAL
    oldest_seq: int


@dataclass
class Subscription:
    topic: str
    handler: Handler | None = None
    # From the last `subscribed`: the topic's last seq, and whether every message
    # after the resume point was replayed (False: some are gone for good).
    seq: int | None = None
    recovered: bool | None = None
    active: bool = False
    read_seq: int | None = None
    unread: int | None = None
    _first: asyncio.Future[Subscription] | None = field(default=None, repr=False)
