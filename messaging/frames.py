"""Every WebSocket frame Bridge sends is built here (SPEC §2, §3, §8); frames from
clients are parsed by messaging/realtime/client_frames.py."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

# The largest seq of any stream: seqs are stored in a signed 64-bit column.
MAX_SEQ = 2**63 - 1


# The messages of a batch, and pushes stored together, share one timestamp.
@functools.lru_cache(maxsize=256)
def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as SPEC's preamble fixes."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now_text() -> str:
    return format_time(datetime.now(UTC))


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


# --- server -> client ----------------------------------------------------------


def connected_frame(
    *, connection_id: str, user_id: str, heartbeat_interval: float, last_seq: int
) -> dict[str, Any]:
    interval = (
        int(heartbeat_interval) if heartbeat_interval >= 1 else heartbeat_interval
    )
    return {
        "type": "connected",
        "connection_id": connection_id,
        "user_id": user_id,
        "server_time": now_text(),
        "heartbeat_interval": interval,
        "last_seq": last_seq,
    }


def message_frame(
    *,
    message_id: str,
    seq: int | None,
    event: str,
    sender: str | None,
    recipient: str | None,
    data: Any,
    created_at: datetime,
    mentions: list[str],
) -> dict[str, Any]:
    return {
        "type": "message",
        "id": message_id,
        "seq": seq,
        "event": event,
        "from": sender,
        "to": recipient,
        "data": data,
        "timestamp": format_time(created_at),
        "mentions": mentions,
    }


def history_truncated_frame(*, oldest_seq: int) -> dict[str, Any]:
    return {"type": "history_truncated", "oldest_seq": oldest_seq}


def ping_frame() -> dict[str, Any]:
    return {"type": "ping", "timestamp": now_text()}


def pong_frame() -> dict[str, Any]:
    return {"type": "pong", "timestamp": now_text()}


def ack_frame(*, ref: str | None, message_id: str, recipients: list[str]) -> dict:
    return {"type": "ack", "ref": ref, "id": message_id, "recipients": recipients}


def error_frame(
    code: str,
    message: str,
    ref: str | None = None,
    *,
    retry_after_ms: int | None = None,
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    if retry_after_ms is not None:  # SPEC §11: when a retry may succeed
        frame["retry_after_ms"] = retry_after_ms
    return frame
