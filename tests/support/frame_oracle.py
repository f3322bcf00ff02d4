"""SPEC §2, §8 and §11 as an oracle: the outcomes allowed for a client frame.

Outcomes are strings:

- "silent": no reply (a `pong`, a valid `ack`);
- "pong", "ack", "subscribed", "unsubscribed": that frame;
- "error:<code>": an `error` frame with that code;
- "close:<code>": the server closed with that code;
- "drop": the server dropped the TCP connection without a close frame.

This is an independent reading of §2's and §8's client frame tables, not
Bridge's parser (nothing here imports server code), so a parser that accepts
what SPEC refuses (or the reverse) fails the fuzzer
(tests/support/frame_fuzz.py, tests/e2e/test_frame_fuzz.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_FRAME_BYTES = 65536  # BRIDGE_MAX_FRAME_BYTES' default
MAX_TEXT_CHARS = 4096
MAX_REF_CHARS = 64
MAX_DEPTH = 100  # bridge_project.strict_json.MAX_DEPTH
MAX_INT_DIGITS = 4300  # sys.get_int_max_str_digits(): longer is not parsed
CLIENT_TYPES = (
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
MAX_REFRESH_TOKEN_CHARS = 16384  # client_frames.MAX_REFRESH_TOKEN_CHARS
_STREAM_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# SPEC §9: a stream part's refusals that depend on the stream's state (who
# else used the id, how many are open) or on the joined text's length.
STREAM_STATE_REFUSALS = frozenset(
    {
        "error:stream_conflict",
        "error:stream_closed",
        "error:too_many_streams",
        "error:too_large",
        "error:rate_limited",
    }
)
MAX_SIGNAL_DATA_BYTES = 4096  # SPEC §9: `data`, serialized
_EVENT_RE = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
MAX_SEQ = 2**63 - 1  # SPEC §5: seqs are 64-bit (also `since`, SPEC §8)
PUBLIC_ACCOUNT = "ci_bot"  # created by the first migration

# Being built while this fuzzer was written (issue 12); both the old and the
# new documented outcome are accepted until they land:
# - ping and ack floods answered `rate_limited` (wt-limits);
RATE_LIMITED = "error:rate_limited"
# - NUL characters refused at the parser (wt-redisops): today a frame whose
#   strings hold "\u0000" is handled like any other.
NUL_REFUSED = frozenset({"error:invalid_json", "error:invalid_frame"})
# A frame that breaks RFC 6455 itself (invalid UTF-8 in a text frame, a
# reserved opcode or RSV bit, a continuation with nothing to continue):
# daphne's autobahn fails the connection by dropping TCP (its server default
# failByDrop=True); 1007/1002 are what RFC 6455 §7.4.1 names if that changes.
PROTOCOL_VIOLATION = frozenset({"drop", "close:1007", "close:1002"})
# Sent when a `message` frame is well-formed: who may receive it is decided
# by routing (SPEC §2), and the per-connection message rate applies.
ROUTED = frozenset(
    {"ack", "error:no_recipient", "error:forbidden", "error:rate_limited"}
)

CLOSES = ("close:", "drop")

# --- SPEC §8 topics ----------------------------------------------------------------
# The namespaces the fuzz server is started with (tests/e2e/test_frame_fuzz.py
# creates them, as an operator would): the oracle's view of the deployment.
FUZZ_NAMESPACES: dict[str, dict[str, object]] = {
    # anyone subscribes; a connection publishes where it is subscribed
    "fz": {"subscribe": "public", "client_publish": "subscribers"},
    # members only (no fuzzed user is a member); publishing by members
    "fzm": {"subscribe": "members", "client_publish": "members"},
    # public, live-only (`seq: null`), no client publishing
    "fzl": {"subscribe": "public", "history_size": 0},
}
# The fuzz server's BRIDGE_MAX_SUBSCRIPTIONS: low, so that the limit is met.
MAX_SUBSCRIPTIONS = 2
_NAMESPACE_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_TOPIC_NAME_RE = re.compile(r"[A-Za-z0-9_.@=-][A-Za-z0-9_.:@=-]{0,127}")
# A divergence this fuzzer found, fixed: Bridge checked topic names with
# `re.match(r"^…$")`, and `$` also matches before one final "\n", so
# "fz:abc\n" was taken as a topic. SPEC's patterns admit no newline; with
# `lenient_newline` the oracle would also allow that reading. Off: strict.
LENIENT_NEWLINE = False


@dataclass(frozen=True)
class Subscriptions:
    """A connection's topic state: what the oracle needs besides the frame."""

    held: frozenset[str] = frozenset()
    limit: int = MAX_SUBSCRIPTIONS


def expected_for(
    value: object,
    subscriptions: Subscriptions = Subscriptions(),
    *,
    lenient_newline: bool = LENIENT_NEWLINE,
) -> frozenset[str]:
    """The outcomes SPEC §2 and §8 allow for a text frame holding `value` as
    JSON, on a connection holding `subscriptions`."""
    allowed = _allowed_by_spec(value, subscriptions, strict=True)
    if lenient_newline and _names_topic_with_newline(value):
        allowed |= _allowed_by_spec(value, subscriptions, strict=False)
    if _has_nul(value):
        return allowed | NUL_REFUSED
    return allowed


def depends_on_subscriptions(value: object) -> bool:
    """Whether the outcome may depend on the connection's topics (SPEC §8)."""
    return isinstance(value, dict) and value.get("type") in (
        "subscribe",
        "unsubscribe",
        "message",
        "signal",
        "read",
        "stream",
    )


def _allowed_by_spec(
    value: object, subscriptions: Subscriptions, *, strict: bool
) -> frozenset[str]:
    if _depth(value) > MAX_DEPTH or _has_lone_surrogate(value):
        return frozenset({"error:invalid_json"})
    if not isinstance(value, dict):
        return frozenset({"error:invalid_frame"})
    problems: set[str] = set()
    ref = value.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_REF_CHARS):
        problems.add("error:invalid_frame")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        problems.add("error:invalid_frame")
        return frozenset(problems)
    if kind == "ack":
        seq = value.get("seq")
        # SPEC §5: seqs are 64-bit; a larger one cannot name a message.
        if not (
            isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63
        ):
            problems.add("error:invalid_frame")
    if kind == "message":
        problems |= _message_problems(value, strict)
    if kind in ("subscribe", "unsubscribe"):
        problems |= _subscription_problems(value, strict)
    if kind == "signal":
        problems |= _signal_problems(value, strict)
    if kind == "read":
        problems |= _read_problems(value, strict)
    if kind == "stream":
        problems |= _stream_problems(value, strict)
    if kind == "refresh":
        token = value.get("token")
        if not isinstance(token, str) or not token:
            problems.add("error:invalid_frame")
        elif len(token) > MAX_REFRESH_TOKEN_CHARS:
            problems.add("error:too_large")
    if problems:
        return frozenset(problems)
    if kind == "subscribe":
        return _subscribe_outcomes(value["topic"], subscriptions)
    if kind == "unsubscribe":
        # SPEC §8: leaves and replies `unsubscribed` (reason "client"), also
        # for a topic not held. An unknown namespace may be `not_found`.
        if _namespace(value["topic"]) in FUZZ_NAMESPACES:
            return frozenset({"unsubscribed"})
        return frozenset({"unsubscribed", "error:not_found"})
    if kind == "message" and value.get("topic") is not None:
        return _publish_outcomes(value["topic"], subscriptions)
    if kind == "signal":
        return _signal_outcomes(value, subscriptions)
    if kind == "read":
        return _read_outcomes(value)
    if kind == "stream":
        return _stream_outcomes(value, subscriptions)
    if kind == "refresh":
        # SPEC §10: the fuzzer's tokens never verify (open mode has none).
        return frozenset({"error:unauthenticated", RATE_LIMITED})
    if kind == "ping":
        return frozenset({"pong", RATE_LIMITED})
    if kind == "pong":
        return frozenset({"silent"})
    if kind == "ack":
        return frozenset({"silent", RATE_LIMITED})
    if kind == "disconnect":
        return frozenset({"close:1000"})
    return ROUTED


def _message_problems(value: dict, strict: bool = True) -> set[str]:
    problems: set[str] = set()
    text = value.get("text")
    if not isinstance(text, str) or not text:
        problems.add("error:invalid_frame")
    elif len(text) > MAX_TEXT_CHARS:
        problems.add("error:too_large")
    data = value.get("data")
    if data is not None and not isinstance(data, dict):
        problems.add("error:invalid_frame")
    to = value.get("to")
    if to is not None and not _is_user_id(to):
        problems.add("error:invalid_frame")
    topic = value.get("topic")
    if topic is not None and (to is not None or not is_topic(topic, strict=strict)):
        problems.add("error:invalid_frame")  # SPEC §8: `topic`, then no `to`
    return problems


def _signal_problems(value: dict, strict: bool = True) -> set[str]:
    """SPEC §9: `event`, optional object `data` (≤ 4,096 bytes serialized),
    exactly one of `topic` and `to`."""
    problems: set[str] = set()
    event = value.get("event")
    if not isinstance(event, str) or _EVENT_RE.fullmatch(event) is None:
        problems.add("error:invalid_frame")
    data = value.get("data")
    if data is not None and not isinstance(data, dict):
        problems.add("error:invalid_frame")
    elif data is not None and _serialized_bytes(data) > MAX_SIGNAL_DATA_BYTES:
        problems.add("error:too_large")
    to, topic = value.get("to"), value.get("topic")
    one_target = (to is None) != (topic is None)
    valid_target = _is_user_id(to) if to is not None else is_topic(topic, strict=strict)
    if not (one_target and valid_target):
        problems.add("error:invalid_frame")
    return problems


def _read_problems(value: dict, strict: bool = True) -> set[str]:
    """SPEC §9: `seq`, optional `topic`."""
    problems: set[str] = set()
    topic = value.get("topic")
    if topic is not None and not is_topic(topic, strict=strict):
        problems.add("error:invalid_frame")
    if not _is_seq(value.get("seq")):
        problems.add("error:invalid_frame")
    return problems


def _read_outcomes(value: dict) -> frozenset[str]:
    """No reply; a topic the user may not subscribe to is `forbidden` (an
    unknown namespace `not_found`); reads count as control frames."""
    if value.get("topic") is None:
        return frozenset({"silent", RATE_LIMITED})
    return frozenset({"silent", "error:forbidden", "error:not_found", RATE_LIMITED})


def _stream_problems(value: dict, strict: bool = True) -> set[str]:
    """SPEC §9: `stream_id`, exactly one of `to` and `topic`, a `delta` (a
    string of at most 4,096 characters, empty only on the final part), a
    boolean `final`, and `data` (an object ≤ 4,096 bytes) only when final."""
    problems: set[str] = set()
    stream_id = value.get("stream_id")
    if not isinstance(stream_id, str) or _STREAM_ID_RE.fullmatch(stream_id) is None:
        problems.add("error:invalid_frame")
    final = value.get("final", False)
    if not isinstance(final, bool):
        problems.add("error:invalid_frame")
        final = False
    delta = value.get("delta", "" if final else None)
    if not isinstance(delta, str) or not (delta or final):
        problems.add("error:invalid_frame")
    elif len(delta) > MAX_TEXT_CHARS:
        problems.add("error:too_large")
    data = value.get("data")
    if data is not None:
        if not final or not isinstance(data, dict):
            problems.add("error:invalid_frame")
        elif _serialized_bytes(data) > MAX_SIGNAL_DATA_BYTES:
            problems.add("error:too_large")
    to, topic = value.get("to"), value.get("topic")
    one_target = (to is None) != (topic is None)
    valid_target = _is_user_id(to) if to is not None else is_topic(topic, strict=strict)
    if not (one_target and valid_target):
        problems.add("error:invalid_frame")
    return problems


def _stream_outcomes(value: dict, subscriptions: Subscriptions) -> frozenset[str]:
    """A well-formed part: no reply, or `ack` for the final one; refused under
    the rules of `message` (§2, §8) or by the stream's state."""
    if value.get("topic") is not None:
        published = _publish_outcomes(value["topic"], subscriptions)
        if "ack" in published:
            published = published | {"silent"}
        return published | STREAM_STATE_REFUSALS
    return frozenset(
        {"silent", "ack", "error:forbidden", "error:no_recipient"}
        | STREAM_STATE_REFUSALS
    )


def _serialized_bytes(value: object) -> int:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: refused as invalid_json first
        return 0


def _signal_outcomes(value: dict, subscriptions: Subscriptions) -> frozenset[str]:
    """A well-formed signal: no reply when delivered (SPEC §9: no `ack`),
    refused under the rules of `message` (§2, §8), or over the rate."""
    if value.get("topic") is not None:
        published = _publish_outcomes(value["topic"], subscriptions)
        return frozenset({"silent" if o == "ack" else o for o in published})
    # The fuzzer's connections are ordinary users: only a public account may
    # be addressed (`to` themselves reaches nobody).
    return frozenset(
        {"silent", "error:forbidden", "error:no_recipient", "error:rate_limited"}
    )


def _subscription_problems(value: dict, strict: bool) -> set[str]:
    problems: set[str] = set()
    if not is_topic(value.get("topic"), strict=strict):
        problems.add("error:invalid_frame")
    since = value.get("since")
    if value.get("type") == "subscribe" and since is not None and not _is_seq(since):
        problems.add("error:invalid_frame")
    return problems


def _is_seq(value: object) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ
    )


def is_topic(value: object, *, strict: bool = True) -> bool:
    """SPEC §8: `<namespace>:<name>`, the namespace not `user`."""
    if not isinstance(value, str) or ":" not in value:
        return False
    namespace, name = value.split(":", 1)
    if namespace == "user":  # reserved for personal streams
        return False
    if not strict:  # see LENIENT_NEWLINE
        namespace = namespace.removesuffix("\n")
        name = name.removesuffix("\n")
    return (
        _NAMESPACE_RE.fullmatch(namespace) is not None
        and _TOPIC_NAME_RE.fullmatch(name) is not None
    )


def _names_topic_with_newline(value: object) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("topic"), str)
        and "\n" in value["topic"]
    )


def _namespace(topic: str) -> str:
    return topic.split(":", 1)[0]


def _subscribe_outcomes(topic: str, subscriptions: Subscriptions) -> frozenset[str]:
    settings = FUZZ_NAMESPACES.get(_namespace(topic))
    if settings is None:
        refusal = "error:not_found"
    elif settings.get("subscribe") == "public":
        refusal = None  # SPEC §8: any authenticated connection
    else:
        refusal = "error:forbidden"  # members/token: no fuzzed user qualifies
    if topic in subscriptions.held:
        # Subscribing again replies `subscribed` again; it takes no new place.
        return frozenset({"subscribed"})
    if len(subscriptions.held) >= subscriptions.limit:
        # SPEC orders no checks: a refused topic may be refused either way.
        over = "error:too_many_subscriptions"
        return frozenset({over} if refusal is None else {over, refusal})
    return frozenset({"subscribed"} if refusal is None else {refusal})


def _publish_outcomes(topic: str, subscriptions: Subscriptions) -> frozenset[str]:
    """A well-formed `message` with `topic` (SPEC §8 `client_publish`)."""
    settings = FUZZ_NAMESPACES.get(_namespace(topic))
    if settings is None:
        outcome = "error:not_found"
    else:
        policy = settings.get("client_publish", "none")
        allowed = policy == "subscribers" and topic in subscriptions.held
        outcome = "ack" if allowed else "error:forbidden"
    return frozenset({outcome, "error:rate_limited"})


def _is_user_id(value: object) -> bool:
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        return False
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    return value[0] in allowed and all(c in allowed or c in "_.-" for c in value)


def _walk(value: object) -> Iterator[object]:
    pending = [value]
    while pending:
        item = pending.pop()
        yield item
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _depth(value: object) -> int:
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


def _has_lone_surrogate(value: object) -> bool:
    """A surrogate left once pairs are joined ("\\ud83d\\ude00" is one emoji
    once parsed; "\\ud800" alone is not a character)."""
    return any(
        isinstance(item, str)
        and any(0xD800 <= ord(c) <= 0xDFFF for c in _join_pairs(item))
        for item in _walk(value)
    )


def _join_pairs(text: str) -> str:
    utf16 = text.encode("utf-16-le", "surrogatepass")
    return utf16.decode("utf-16-le", "surrogatepass")


def has_surrogate(value: object) -> bool:
    return any(
        isinstance(item, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in item)
        for item in _walk(value)
    )


def _has_nul(value: object) -> bool:
    return any(isinstance(item, str) and "\x00" in item for item in _walk(value))


def expected_for_text(payload: bytes) -> frozenset[str]:
    """What SPEC allows for `payload`, parsed as strict JSON would be."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return PROTOCOL_VIOLATION
    try:
        value = json.loads(text, parse_constant=_refuse, parse_float=_finite)
    except (ValueError, RecursionError):
        return frozenset({"error:invalid_json"})
    return expected_for(value)


def _refuse(name: str) -> None:
    raise ValueError(name)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    return number
