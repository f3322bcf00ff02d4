"""SPEC §2 and §11 as an oracle: the outcomes allowed for a client frame.

Outcomes are strings:

- "silent": no reply (a `pong`, a valid `ack`);
- "pong", "ack": that frame;
- "error:<code>": an `error` frame with that code;
- "close:<code>": the server closed with that code;
- "drop": the server dropped the TCP connection without a close frame.

This is an independent reading of §2's client frame table, not Bridge's
parser, so a parser that accepts what SPEC refuses (or the reverse) fails the
fuzzer (tests/support/frame_fuzz.py, tests/e2e/test_frame_fuzz.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

MAX_FRAME_BYTES = 65536  # BRIDGE_MAX_FRAME_BYTES' default
MAX_TEXT_CHARS = 4096
MAX_REF_CHARS = 64
MAX_DEPTH = 100  # bridge_project.strict_json.MAX_DEPTH
MAX_INT_DIGITS = 4300  # sys.get_int_max_str_digits(): longer is not parsed
CLIENT_TYPES = ("ping", "pong", "message", "ack", "disconnect")
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


def expected_for(value: object) -> frozenset[str]:
    """The outcomes SPEC §2 allows for a text frame holding `value` as JSON."""
    allowed = _allowed_by_spec(value)
    if _has_nul(value):
        return allowed | NUL_REFUSED
    return allowed


def _allowed_by_spec(value: object) -> frozenset[str]:
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
        problems |= _message_problems(value)
    if problems:
        return frozenset(problems)
    if kind == "ping":
        return frozenset({"pong", RATE_LIMITED})
    if kind == "pong":
        return frozenset({"silent"})
    if kind == "ack":
        return frozenset({"silent", RATE_LIMITED})
    if kind == "disconnect":
        return frozenset({"close:1000"})
    return ROUTED


def _message_problems(value: dict) -> set[str]:
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
    return problems


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
