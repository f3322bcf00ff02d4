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
    *,
    connection_id: str,
    user_id: str,
    heartbeat_interval: float,
    last_seq: int,
    read_seq: int,
    unread: int,
    expires_at: float | None = None,
) -> dict[str, Any]:
    """SPEC §2, plus the personal stream's read position and unread count (§9)
    and when the connection's token expires (§10; null when it does not)."""
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
        "read_seq": read_seq,
        "unread": unread,
        "expires_at": expiry_text(expires_at),
    }


def expiry_text(expires_at: float | None) -> str | None:
    """A token's expiry (Unix time) as SPEC's time text; None stays None."""
    if expires_at is None:
        return None
    return format_time(datetime.fromtimestamp(expires_at, UTC))


def token_expiring_frame(*, expires_at: float) -> dict[str, Any]:
    """SPEC §10: the token expires soon; send `refresh` before `expires_at`."""
    return {"type": "token_expiring", "expires_at": expiry_text(expires_at)}


def refreshed_frame(
    *, expires_at: float | None, ref: str | None = None
) -> dict[str, Any]:
    """SPEC §10: a `refresh` was accepted; the connection now expires then."""
    frame: dict[str, Any] = {"type": "refreshed", "expires_at": expiry_text(expires_at)}
    if ref is not None:
        frame["ref"] = ref
    return frame


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
    topic: str | None = None,
    recalled: bool = False,
    stream_id: str | None = None,
    incomplete: bool = False,
) -> dict[str, Any]:
    """SPEC §3; a topic message, and a bot's mention copy of one, add `topic`
    (§8): where it was published; a recalled one is a tombstone with
    `"recalled": true` (§9); a message sent in parts names its `stream_id`,
    and `"incomplete": true` when the server finished it (§9)."""
    frame = {
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
    if topic is not None:
        frame["topic"] = topic
    if recalled:
        frame["recalled"] = True
    if stream_id is not None:
        frame["stream_id"] = stream_id
        if incomplete:
            frame["incomplete"] = True
    return frame


def stream_part_frame(
    *,
    message_id: str,
    stream_id: str,
    sender: str | None,
    to: str | None,
    topic: str | None,
    index: int,
    delta: str,
) -> dict[str, Any]:
    """SPEC §9: one part of a message sent in parts; live only."""
    frame: dict[str, Any] = {
        "type": "stream",
        "id": message_id,
        "stream_id": stream_id,
        "from": sender,
    }
    if topic is not None:
        frame["topic"] = topic
    else:
        frame["to"] = to
    frame["index"] = index
    frame["delta"] = delta
    return frame


# The two holes of an encoded stream part, filled in by Redis. Every field
# before the index (type, id, stream_id, from, to or topic) is restricted to
# characters that cannot spell either hole, so the first match is the hole.
PART_ID_HOLE = "00000000-0000-0000-0000-00000000000a"
_PART_INDEX_HOLE = "\x00index"
_ENCODED_INDEX_HOLE = encode(_PART_INDEX_HOLE)


def stream_part_template(
    *, stream_id: str, sender: str | None, to: str | None, topic: str | None, delta: str
) -> tuple[str, str, str]:
    """stream_part_frame, encoded around its `id` and `index`: the text before
    the id, between id and index, and after the index.

    Redis fills both in (streams/stream_state.py): it assigns the index and
    publishes the part in one script, so that parts sent to different
    processes reach every subscriber in index order, and a stream's id is known
    there only once its first part has arrived."""
    frame = stream_part_frame(
        message_id=PART_ID_HOLE,
        stream_id=stream_id,
        sender=sender,
        to=to,
        topic=topic,
        index=0,
        delta=delta,
    )
    frame["index"] = _PART_INDEX_HOLE
    before_id, rest = encode(frame).split(PART_ID_HOLE, 1)
    between, after_index = rest.split(_ENCODED_INDEX_HOLE, 1)
    return before_id, between, after_index


def recall_frame(*, message_id: str, topic: str | None) -> dict[str, Any]:
    """SPEC §9: a message the connection may have shown was recalled."""
    frame: dict[str, Any] = {"type": "recall", "id": message_id}
    if topic is not None:
        frame["topic"] = topic
    return frame


def signal_frame(
    *,
    event: str,
    data: dict[str, Any] | None,
    sender: str,
    topic: str | None = None,
    to: str | None = None,
) -> dict[str, Any]:
    """SPEC §9: a live-only signal (typing…), never stored: no `id`, no `seq`;
    `topic` where it was sent, or `to`, the addressee."""
    frame: dict[str, Any] = {
        "type": "signal",
        "event": event,
        "data": data,
        "from": sender,
    }
    if topic is not None:
        frame["topic"] = topic
    else:
        frame["to"] = to
    frame["timestamp"] = now_text()
    return frame


def read_frame(*, seq: int, topic: str | None = None) -> dict[str, Any]:
    """SPEC §9: the user read up to `seq` on another of its connections."""
    frame: dict[str, Any] = {"type": "read"}
    if topic is not None:
        frame["topic"] = topic
    frame["seq"] = seq
    return frame


def receipt_frame(*, user_id: str, message_ids: list[str], seq: int) -> dict[str, Any]:
    """SPEC §9: `user_id` read these messages of the receiving user; `seq` is
    the reader's new position in its personal stream."""
    return {
        "type": "receipt",
        "user_id": user_id,
        "message_ids": message_ids,
        "seq": seq,
    }


def topic_receipt_frame(*, topic: str, user_id: str, seq: int) -> dict[str, Any]:
    """SPEC §9: a member of the topic read up to `seq` (namespaces with
    `receipts`)."""
    return {"type": "receipt", "topic": topic, "user_id": user_id, "seq": seq}


def history_truncated_frame(
    *, oldest_seq: int, topic: str | None = None
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "history_truncated", "oldest_seq": oldest_seq}
    if topic is not None:
        frame["topic"] = topic
    return frame


def ping_frame() -> dict[str, Any]:
    return {"type": "ping", "timestamp": now_text()}


def pong_frame() -> dict[str, Any]:
    return {"type": "pong", "timestamp": now_text()}


def ack_frame(
    *,
    ref: str | None,
    message_id: str,
    recipients: list[str],
    topic: str | None = None,
    seq: int | None = None,
) -> dict:
    frame = {"type": "ack", "ref": ref, "id": message_id, "recipients": recipients}
    if topic is not None:  # SPEC §8: a message published to a topic
        frame["topic"] = topic
        frame["seq"] = seq
    return frame


def subscribed_frame(
    *,
    topic: str,
    seq: int | None,
    recovered: bool,
    ref: str | None,
    read_seq: int | None = None,
    unread: int | None = None,
) -> dict[str, Any]:
    """SPEC §8; `read_seq` and `unread` where the user is a member (§9)."""
    frame: dict[str, Any] = {
        "type": "subscribed",
        "topic": topic,
        "seq": seq,
        "recovered": recovered,
    }
    if read_seq is not None:
        frame["read_seq"] = read_seq
        frame["unread"] = unread
    if ref is not None:
        frame["ref"] = ref
    return frame


def unsubscribed_frame(
    *, topic: str, reason: str, ref: str | None = None
) -> dict[str, Any]:
    frame = {"type": "unsubscribed", "topic": topic, "reason": reason}
    if ref is not None:
        frame["ref"] = ref
    return frame


def presence_change_frame(kind: str, *, topic: str, user_id: str) -> dict[str, Any]:
    """`join` (a user's first connection subscribed) or `leave` (its last one
    left), SPEC §8."""
    return {"type": kind, "topic": topic, "user_id": user_id}


def monitor_frame(
    *,
    stats: dict[str, Any],
    users: list[dict[str, Any]],
    online_users: int,
    changes: list[dict[str, Any]],
    pushes_per_second: float,
) -> dict[str, Any]:
    """The operators' live view (messaging/monitoring.py): `/api/stats`'s
    figures, the first page of `/api/users/online`, who connected or
    disconnected since the last frame, and the push rate."""
    return {
        "type": "monitor",
        "server_time": now_text(),
        "stats": stats,
        "users": users,
        "online_users": online_users,
        "changes": changes,
        "pushes_per_second": pushes_per_second,
    }


def error_frame(
    code: str,
    message: str,
    ref: str | None = None,
    *,
    retry_after_ms: int | None = None,
    topic: str | None = None,
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    if topic is not None:  # SPEC §8: refusals of subscribe/unsubscribe
        frame["topic"] = topic
    if retry_after_ms is not None:  # SPEC §11: when a retry may succeed
        frame["retry_after_ms"] = retry_after_ms
    return frame
