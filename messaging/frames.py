"""Every WebSocket frame Bridge sends is built here, and every frame it receives
is parsed here (SPEC §2, §3)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge_project import strict_json

MAX_TEXT_CHARS = 4096
MAX_REF_CHARS = 64
# The largest seq of any stream: seqs are stored in a signed 64-bit column.
MAX_SEQ = 2**63 - 1
CLIENT_FRAME_TYPES = ("ping", "pong", "message", "ack", "disconnect")


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


# --- client -> server ----------------------------------------------------------


class FrameError(Exception):
    """A client frame that is refused; the connection stays open (SPEC §2)."""

    def __init__(
        self,
        code: str,
        message: str,
        ref: str | None = None,
        *,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True)
class ClientFrame:
    type: str
    ref: str | None = None
    text: str | None = None
    data: dict[str, Any] | None = None
    to: str | None = None
    seq: int | None = None


def parse_client_frame(text: str | None) -> ClientFrame:
    """Validate one incoming text frame; raises FrameError with SPEC's code."""
    if text is None:
        raise FrameError(
            "invalid_frame", "binary frames are not accepted; send JSON text"
        )
    try:
        payload = strict_json.loads(text)
    except ValueError:
        raise FrameError("invalid_json", "the frame is not valid JSON") from None
    if not isinstance(payload, dict):
        raise FrameError("invalid_frame", "a frame must be a JSON object")
    ref = _optional_ref(payload)
    frame_type = payload.get("type")
    if not isinstance(frame_type, str) or frame_type not in CLIENT_FRAME_TYPES:
        raise FrameError(
            "invalid_frame",
            f"'type' must be one of {', '.join(CLIENT_FRAME_TYPES)}",
            ref,
        )
    if frame_type == "message":
        return _parse_message(payload, ref)
    if frame_type == "ack":
        seq = payload.get("seq")
        if not _is_seq(seq):
            raise FrameError(
                "invalid_frame", "'seq' must be an integer from 0 to 2**63 - 1", ref
            )
        return ClientFrame(type="ack", ref=ref, seq=seq)
    return ClientFrame(type=frame_type, ref=ref)


def _optional_ref(payload: dict[str, Any]) -> str | None:
    ref = payload.get("ref")
    if ref is None:
        return None
    if not isinstance(ref, str) or len(ref) > MAX_REF_CHARS:
        # The ref cannot be echoed when it is itself the problem.
        raise FrameError(
            "invalid_frame",
            f"'ref' must be a string of at most {MAX_REF_CHARS} characters",
        )
    return ref


def _parse_message(payload: dict[str, Any], ref: str | None) -> ClientFrame:
    text = payload.get("text")
    if not isinstance(text, str) or not text:
        raise FrameError("invalid_frame", "'text' must be a non-empty string", ref)
    if len(text) > MAX_TEXT_CHARS:
        raise FrameError(
            "too_large", f"'text' is over {MAX_TEXT_CHARS} characters", ref
        )
    data = payload.get("data")
    if data is not None and not isinstance(data, dict):
        raise FrameError("invalid_frame", "'data' must be an object", ref)
    to = payload.get("to")
    if to is not None and not isinstance(to, str):
        raise FrameError("invalid_frame", "'to' must be a user id", ref)
    return ClientFrame(type="message", ref=ref, text=text, data=data, to=to)


def _is_seq(value: object) -> bool:
    """A seq a stream can have: stored in a signed 64-bit column (and beyond
    2**53 a JavaScript client could not even hold it exactly)."""
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ
    )
