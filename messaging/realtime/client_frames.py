"""Every frame a client sends is parsed here (SPEC §2); what goes back is built by
messaging/frames.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.identifiers import is_event_name, is_stream_id, is_user_id
from bridge_project import strict_json
from messaging.frames import MAX_SEQ, encode
from messaging.streams.names import InvalidTopic, parse_topic

MAX_TEXT_CHARS = 4096
MAX_REF_CHARS = 64
# SPEC §9: a signal's `data`, serialized.
MAX_SIGNAL_DATA_BYTES = 4096
CLIENT_FRAME_TYPES = (
    "ping",
    "pong",
    "message",
    "ack",
    "disconnect",
    "subscribe",
    "unsubscribe",
    "signal",
    "read",
    "stream",
    "refresh",
)
# SPEC §10 `refresh`: a Bridge token or a JWT (accounts/jwt_tokens.py caps a
# JWT at 8,192 bytes; this bound only keeps the frame honest).
MAX_REFRESH_TOKEN_CHARS = 16384


class FrameError(Exception):
    """A client frame that is refused; the connection stays open (SPEC §2)."""

    def __init__(
        self,
        code: str,
        message: str,
        ref: str | None = None,
        *,
        retry_after_ms: int | None = None,
        topic: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.retry_after_ms = retry_after_ms
        self.topic = topic


@dataclass(frozen=True)
class ClientFrame:
    type: str
    ref: str | None = None
    text: str | None = None
    data: dict[str, Any] | None = None
    to: str | None = None
    seq: int | None = None
    topic: str | None = None
    # `subscribe`: recover the messages after this seq (SPEC §8).
    since: int | None = None
    # `signal`: the event name (SPEC §9).
    event: str | None = None
    # `stream`: a part of a message sent in parts (SPEC §9).
    stream_id: str | None = None
    delta: str | None = None
    final: bool = False
    # `refresh`: the new token (SPEC §10). Never logged or echoed.
    token: str | None = None


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
    if frame_type == "signal":
        return _parse_signal(payload, ref)
    if frame_type in ("subscribe", "unsubscribe"):
        return _parse_subscription(frame_type, payload, ref)
    if frame_type == "read":
        return _parse_read(payload, ref)
    if frame_type == "stream":
        return _parse_stream(payload, ref)
    if frame_type == "refresh":
        return _parse_refresh(payload, ref)
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
    topic = payload.get("topic")
    if topic is not None:
        if to is not None:
            raise FrameError(
                "invalid_frame", "give 'to' or 'topic', not both", ref, topic=None
            )
        topic = _topic(payload, ref)
    return ClientFrame(
        type="message", ref=ref, text=text, data=data, to=to, topic=topic
    )


def _parse_signal(payload: dict[str, Any], ref: str | None) -> ClientFrame:
    """SPEC §9: an event name, optional `data` (an object of at most
    MAX_SIGNAL_DATA_BYTES serialized), and exactly one of `topic` and `to`."""
    event = payload.get("event")
    if not is_event_name(event):
        raise FrameError(
            "invalid_frame", "'event' must match ^[a-z][a-z0-9_.:-]{0,63}$", ref
        )
    data = payload.get("data")
    if data is not None:
        _check_small_object(data, ref)
    to = payload.get("to")
    topic = payload.get("topic")
    if (to is None) == (topic is None):
        raise FrameError("invalid_frame", "give exactly one of 'to' and 'topic'", ref)
    if to is not None:
        if not is_user_id(to):
            raise FrameError("invalid_frame", "'to' must be a user id", ref)
        return ClientFrame(type="signal", ref=ref, event=event, data=data, to=to)
    return ClientFrame(
        type="signal", ref=ref, event=event, data=data, topic=_topic(payload, ref)
    )


def _parse_stream(payload: dict[str, Any], ref: str | None) -> ClientFrame:
    """SPEC §9: `stream_id`, exactly one of `to` and `topic`, a `delta` (at
    most MAX_TEXT_CHARS; empty only on the final part), and on the final part
    an optional `data` object of at most MAX_SIGNAL_DATA_BYTES serialized."""
    stream_id = payload.get("stream_id")
    if not is_stream_id(stream_id):
        raise FrameError(
            "invalid_frame", "'stream_id' must match ^[A-Za-z0-9_.:-]{1,64}$", ref
        )
    final = payload.get("final", False)
    if not isinstance(final, bool):
        raise FrameError("invalid_frame", "'final' must be true or false", ref)
    delta = payload.get("delta", "" if final else None)
    if not isinstance(delta, str) or not (delta or final):
        raise FrameError(
            "invalid_frame", "'delta' must be a string, non-empty unless final", ref
        )
    if len(delta) > MAX_TEXT_CHARS:
        raise FrameError(
            "too_large", f"'delta' is over {MAX_TEXT_CHARS} characters", ref
        )
    data = payload.get("data")
    if data is not None:
        if not final:
            raise FrameError("invalid_frame", "'data' goes with the final part", ref)
        _check_small_object(data, ref)
    to = payload.get("to")
    topic = payload.get("topic")
    if (to is None) == (topic is None):
        raise FrameError("invalid_frame", "give exactly one of 'to' and 'topic'", ref)
    if to is not None and not is_user_id(to):
        raise FrameError("invalid_frame", "'to' must be a user id", ref)
    return ClientFrame(
        type="stream",
        ref=ref,
        stream_id=stream_id,
        delta=delta,
        final=final,
        data=data,
        to=to,
        topic=None if topic is None else _topic(payload, ref),
    )


def _check_small_object(data: object, ref: str | None) -> None:
    """A signal's or final part's `data`: an object of at most
    MAX_SIGNAL_DATA_BYTES serialized."""
    if not isinstance(data, dict):
        raise FrameError("invalid_frame", "'data' must be an object", ref)
    if len(encode(data).encode("utf-8")) > MAX_SIGNAL_DATA_BYTES:
        raise FrameError(
            "too_large",
            f"'data' is over {MAX_SIGNAL_DATA_BYTES} bytes serialized",
            ref,
        )


def _parse_read(payload: dict[str, Any], ref: str | None) -> ClientFrame:
    """SPEC §9: `seq`, and `topic` for a topic (else the personal stream)."""
    topic = None if payload.get("topic") is None else _topic(payload, ref)
    seq = payload.get("seq")
    if not _is_seq(seq):
        raise FrameError(
            "invalid_frame",
            "'seq' must be an integer from 0 to 2**63 - 1",
            ref,
            topic=topic,
        )
    return ClientFrame(type="read", ref=ref, seq=seq, topic=topic)


def _parse_refresh(payload: dict[str, Any], ref: str | None) -> ClientFrame:
    """SPEC §10: `token`, a non-empty string."""
    token = payload.get("token")
    if not isinstance(token, str) or not token:
        raise FrameError("invalid_frame", "'token' must be a non-empty string", ref)
    if len(token) > MAX_REFRESH_TOKEN_CHARS:
        raise FrameError(
            "too_large", f"'token' is over {MAX_REFRESH_TOKEN_CHARS} characters", ref
        )
    return ClientFrame(type="refresh", ref=ref, token=token)


def _parse_subscription(
    frame_type: str, payload: dict[str, Any], ref: str | None
) -> ClientFrame:
    topic = _topic(payload, ref)
    since = payload.get("since")
    if frame_type == "unsubscribe" or since is None:
        return ClientFrame(type=frame_type, ref=ref, topic=topic)
    if not _is_seq(since):
        raise FrameError(
            "invalid_frame",
            "'since' must be an integer from 0 to 2**63 - 1",
            ref,
            topic=topic,
        )
    return ClientFrame(type=frame_type, ref=ref, topic=topic, since=since)


def _topic(payload: dict[str, Any], ref: str | None) -> str:
    value = payload.get("topic")
    try:
        return str(parse_topic(value))
    except InvalidTopic as exc:
        # SPEC §8: the refusal carries the frame's topic (any string; the
        # frame itself was within BRIDGE_MAX_FRAME_BYTES).
        echo = value if isinstance(value, str) else None
        raise FrameError("invalid_frame", str(exc), ref, topic=echo) from None


def _is_seq(value: object) -> bool:
    """A seq a stream can have: stored in a signed 64-bit column (and beyond
    2**53 a JavaScript client could not even hold it exactly)."""
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ
    )
