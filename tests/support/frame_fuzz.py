"""Generated hostile WebSocket frames, each with the outcomes SPEC allows
(tests/support/frame_oracle.py).

A `Case` is the bytes to write on the socket (whole RFC 6455 frames, masked)
and the set of outcomes that are correct for it. Generation is a seeded
`random.Random`, so a failing case is reproduced by its seed and index.

Topic frames (SPEC §8: subscribe, unsubscribe, message with `topic`) have
outcomes that depend on what the connection already holds: their `Case`
keeps the frame, and the runner asks `Case.expected_on(subscriptions)`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.frame_oracle import (
    CLIENT_TYPES,
    CLOSES,
    FUZZ_NAMESPACES,
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    MAX_INT_DIGITS,
    MAX_TEXT_CHARS,
    PROTOCOL_VIOLATION,
    PUBLIC_ACCOUNT,
    RATE_LIMITED,
    ROUTED,
    Subscriptions,
    depends_on_subscriptions,
    expected_for,
    expected_for_text,
    has_surrogate,
)
from tests.support.raw_ws import BINARY, CONTINUATION, PING, TEXT, encode_frame


@dataclass(frozen=True)
class Case:
    kind: str
    wire: bytes  # what is written to the socket
    expected: frozenset[str]  # on a connection with no subscriptions
    note: str = ""  # the payload, shortened, for failure messages
    # The JSON frame, when its outcome depends on the connection's topics
    # (SPEC §8: subscribe, unsubscribe, message): see `expected_on`.
    frame: object = None

    def expected_on(self, subscriptions: Subscriptions) -> frozenset[str]:
        """The allowed outcomes on a connection holding `subscriptions`."""
        if self.frame is None:
            return self.expected
        return expected_for(self.frame, subscriptions)

    @property
    def topic(self) -> object:
        """The frame's `topic` (None when there is none)."""
        return self.frame.get("topic") if isinstance(self.frame, dict) else None

    @property
    def ref(self) -> object:
        return self.frame.get("ref") if isinstance(self.frame, dict) else None

    @property
    def may_close(self) -> bool:
        """Some allowed outcome ends the connection. No probe follows such a
        case: a frame queued behind a server-side close is its own hostile
        input (tests/e2e/test_frames_after_close.py), not this case's."""
        return any(outcome.startswith(CLOSES) for outcome in self.expected)


# --- generators ------------------------------------------------------------------

_ALPHABETS = (
    "abcxyz _-.@",
    "\x00\x01\x07\x1b\x7f\u0085\u2028\u2029\ufeff",  # control and separators
    "éßж中文😀\U0010ffff",
    "\ud800\udbff\udc00",  # lone surrogates: only ever sent \u-escaped
    '"\\/{}[],:',
)

# `since` (SPEC §8: an integer 0 … 2**63 - 1), then wrong types and ranges.
_SINCE = (
    *(0, 1, 3, 2**63 - 1),
    *(2**63, 10**30, -1, -(2**63), 1.0, 0.5, 2.0**63, "0", True, False, None),
    *([0], {"seq": 0}),
)

# A few names, often: subscribing, publishing and replaying meet on them.
_TOPIC_NAMES = ("a", "a", "a", "room.1", "room.1", "x@y=z", "a:b:c", "-", "=e", "7")


class FrameFuzzer:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def cases(self, count: int) -> Iterator[Case]:
        makers = (
            (self.random_json, 30),
            (self.wrong_types, 25),
            (self.valid_frame, 12),
            (self.topic_frame, 20),
            (self.topic_dialogue, 10),
            (self.stream_frame, 8),
            (self.raw_text, 10),
            (self.deep_nesting, 5),
            (self.binary, 5),
            (self.invalid_utf8, 4),
            (self.protocol_violation, 3),
            (self.oversized, 2),
        )
        choices = [maker for maker, _weight in makers]
        weights = [weight for _maker, weight in makers]
        for _ in range(count):
            case = self.random.choices(choices, weights)[0]()
            # Only a plain, final text frame (no RSV bits) is cut up again.
            if case.wire[:1] == bytes([0x80 | TEXT]) and self._chance(0.25):
                case = self._fragmented(case)
            yield case

    # --- JSON values --------------------------------------------------------------

    def string(self, longest: int = 12) -> str:
        alphabet = self.random.choice(_ALPHABETS) + "abc"
        return "".join(
            self.random.choice(alphabet) for _ in range(self.random.randint(0, longest))
        )

    def number(self) -> int | float:
        return self.random.choice(
            [
                0,
                -1,
                1,
                2**53 + 1,
                -(2**63),
                2**64,
                10 ** self.random.randint(20, 300),
                -(10 ** self.random.randint(20, 300)),
                1.5,
                -0.0,
                5e-324,
                1.7976931348623157e308,
                self.random.uniform(-1e9, 1e9),
            ]
        )

    def scalar(self) -> object:
        return self.random.choice(
            [None, True, False, self.number(), self.string(), self.string(40)]
        )

    def value(self, depth: int = 0) -> object:
        roll = self.random.random()
        if depth >= 4 or roll < 0.5:
            return self.scalar()
        if roll < 0.75:
            return [self.value(depth + 1) for _ in range(self.random.randint(0, 4))]
        return {
            self.string(): self.value(depth + 1)
            for _ in range(self.random.randint(0, 4))
        }

    # --- cases ---------------------------------------------------------------------

    def random_json(self) -> Case:
        """Any JSON value, sometimes an object with a client `type`."""
        value = self.value()
        if isinstance(value, dict) and self._chance(0.5):
            value["type"] = self.random.choice([*CLIENT_TYPES, self.string()])
        return self._json_case("random_json", value)

    def wrong_types(self) -> Case:
        """A known frame type whose fields have wrong types or values."""
        kind = self.random.choice(["ack", "message", "ping", "pong"])
        frame: dict[str, object] = {"type": kind}
        if kind == "ack":
            frame["seq"] = self.random.choice(
                [self.scalar(), -1, "1", 1.0, True, [1], {"seq": 1}, self.number()]
            )
        elif kind == "message":
            frame["text"] = self.random.choice(
                [
                    self.scalar(),
                    "",
                    ["hi"],
                    f"hello @{PUBLIC_ACCOUNT} " + self.string(),
                    "x" * self.random.choice([MAX_TEXT_CHARS, MAX_TEXT_CHARS + 1]),
                ]
            )
            if self._chance(0.5):
                frame["data"] = self.value()
            if self._chance(0.4):
                frame["to"] = self.random.choice(
                    [PUBLIC_ACCOUNT, self.string(), 7, None, "-x", "a" * 65]
                )
        if self._chance(0.3):
            frame["ref"] = self.random.choice(
                [self.string(), 42, "r" * 64, "r" * 65, ["r"], None]
            )
        return self._json_case("wrong_types", frame)

    def valid_frame(self) -> Case:
        """What a correct client sends: the fuzzer must not refuse these."""
        frame: dict[str, object] = self.random.choice(
            [
                {"type": "ping"},
                {"type": "pong"},
                {"type": "ack", "seq": self.random.choice([0, 1, 2**63 - 1])},
                {"type": "message", "text": f"@{PUBLIC_ACCOUNT} " + self.string()},
                {"type": "message", "text": "hi", "to": PUBLIC_ACCOUNT},
                {"type": "disconnect"},
                {"type": "subscribe", "topic": self.topic_name()},
                {"type": "subscribe", "topic": self.topic_name(), "since": 0},
                {"type": "unsubscribe", "topic": self.topic_name()},
                {"type": "message", "text": "hi", "topic": self.topic_name()},
                {"type": "signal", "event": "typing", "to": PUBLIC_ACCOUNT},
                {"type": "signal", "event": "typing", "topic": self.topic_name()},
                {"type": "read", "seq": self.random.choice([0, 1, 2**63 - 1])},
                {"type": "read", "seq": 1, "topic": self.topic_name()},
                self.stream_part(),
                {"type": "refresh", "token": self.random.choice(["x", "a.b.c"])},
            ]
        )
        if self._chance(0.3):
            frame["ref"] = self.string(20)
        return self._json_case("valid_frame", frame)

    def stream_part(self) -> dict[str, object]:
        """A part of a streamed message (SPEC §9), to the bot or a topic, on a
        few stream ids so that streams open, conflict, end and are refused."""
        part: dict[str, object] = {
            "type": "stream",
            "stream_id": self.random.choice(["s1", "s2", "s3", "s:4"]),
            "delta": self.random.choice(["tok ", "x", "é" * 3]),
        }
        if self._chance(0.5):
            part["to"] = PUBLIC_ACCOUNT
        else:
            part["topic"] = self.topic_name()
        if self._chance(0.2):
            part["final"] = True
            if self._chance(0.5):
                part["data"] = {"k": 1}
        return part

    def stream_frame(self) -> Case:
        """A stream part with fields of every wrong shape (SPEC §9)."""
        frame = self.stream_part()
        field = self.random.choice(
            ["stream_id", "delta", "final", "data", "to", "topic"]
        )
        frame[field] = self.random.choice(
            [
                self.scalar(),
                "",
                None,
                [],
                {"k": "x" * 4100},
                "x" * self.random.choice([MAX_TEXT_CHARS, MAX_TEXT_CHARS + 1]),
                "a b",
                "s" * 65,
                True,
            ]
        )
        return self._json_case("stream_frame", frame)

    # --- topics (SPEC §8) -----------------------------------------------------------

    def topic_frame(self) -> Case:
        """subscribe / unsubscribe / message with `topic`: names valid and
        not, known and unknown namespaces, `since` of every shape, `to` too."""
        kind = self.random.choice(
            ["subscribe", "subscribe", "unsubscribe", "message", "signal"]
        )
        frame: dict[str, object] = {"type": kind}
        if kind == "signal":  # SPEC §9
            frame["event"] = self.random.choice(["typing", "typing", "", "Typing", 7])
            if self._chance(0.2):
                frame["to"] = self.random.choice([PUBLIC_ACCOUNT, "bob", None])
            if self._chance(0.3):
                frame["data"] = self.random.choice(
                    [{"k": 1}, [], "d", {"k": "x" * 4100}]
                )
        if kind == "message":
            frame["text"] = self.random.choice(
                ["hi", "hi", f"hi @{PUBLIC_ACCOUNT}", self.string() or "x", ""]
            )
            if self._chance(0.2):
                frame["to"] = self.random.choice([PUBLIC_ACCOUNT, "bob", None])
            if self._chance(0.2):
                frame["data"] = self.random.choice([{"k": 1}, [], "d"])
        if self._chance(0.95):  # else no `topic` at all
            frame["topic"] = (
                self.topic_name() if self._chance(0.7) else self.bad_topic()
            )
        if kind == "subscribe" and self._chance(0.5):
            frame["since"] = self.random.choice(_SINCE)
        if self._chance(0.4):
            frame["ref"] = self.random.choice(
                [
                    f"ref-{self.random.randint(0, 99)}",
                    self.string(20),
                    "r" * 64,
                    "r" * 65,
                    7,
                    None,
                ]
            )
        return self._json_case("topic_frame", frame)

    def topic_dialogue(self) -> Case:
        """What a correct topic client sends, on the few names in the
        namespace that admits it: subscriptions pile up to the limit, and
        messages are published where the connection is subscribed and
        replayed to a later `subscribe` with `since`."""
        topic = "fz:" + self.random.choice(_TOPIC_NAMES)
        frame: dict[str, object] = self.random.choice(
            [
                {"type": "subscribe", "topic": topic},
                {"type": "subscribe", "topic": topic, "since": 0},
                {"type": "subscribe", "topic": topic, "since": 2},
                {"type": "message", "text": "hi", "topic": topic},
                {"type": "message", "text": "hi", "topic": topic, "data": {"k": 1}},
                {"type": "signal", "event": "typing", "topic": topic},
                {"type": "signal", "event": "typing", "topic": topic, "data": {}},
                {"type": "unsubscribe", "topic": topic},
            ]
        )
        if self._chance(0.5):
            frame["ref"] = f"ref-{self.random.randint(0, 99)}"
        return self._json_case("topic_dialogue", frame)

    def topic_name(self) -> str:
        """A topic SPEC §8 allows: mostly in the fuzz server's namespaces (a
        few names, so subscribing, publishing and replaying meet), else in a
        namespace that does not exist."""
        roll = self.random.random()
        if roll < 0.5:
            namespace = "fz"  # where subscribing and publishing are admitted
        elif roll < 0.75:
            namespace = self.random.choice(sorted(FUZZ_NAMESPACES))
        else:
            namespace = self.random.choice(
                ["nope", "a", "z" * 32, "n0_-x", "fz-", "fz_m", "fzz", "users"]
            )
        if self._chance(0.7):
            name = self.random.choice(_TOPIC_NAMES)
        else:
            first = "ABCxyz0189_.@=-"
            rest = first + ":"
            length = self.random.choice([0, 1, 5, 20, 127])
            name = self.random.choice(first) + "".join(
                self.random.choice(rest) for _ in range(length)
            )
        return f"{namespace}:{name}"

    def bad_topic(self) -> object:
        """Something SPEC §8 refuses as a topic name."""
        return self.random.choice(
            [
                None,
                7,
                True,
                ["fz:a"],
                {"fz": "a"},
                1.5,
                "",
                ":",
                "fz",
                "fz:",
                ":a",
                "fz::a",  # the name may not start with ':'
                "user:alice",
                "user:ci_bot",
                "Fz:a",
                "1fz:a",
                "_fz:a",
                "-fz:a",
                "f z:a",
                "fz.x:a",
                "é:a",
                "a" * 33 + ":a",
                "fz:" + "a" * 129,
                "fz:" + "b" * 128 + "\n",
                "fz:" + "c" * 300,  # longer than any topic
                "fz:a b" * 200,
                "fz:a b",
                "fz:a/b",
                "fz:a#b",
                "fz:a*",
                "fz:*",
                "fz:é",
                "fz:中",
                "fz:😀",
                "fz:a\x00",
                "fz:a\t",
                "fz:a\n",  # see frame_oracle.LENIENT_NEWLINE
                "fz\n:a",
                "user\n:a",
                "fz:\na",
                " fz:a",
                "fz:a ",
                "fz:a\u2028",
                "fz:\ud800",
                "fz:" + self.string(),
                self.string() + ":a",
                self.string(40),
            ]
        )

    def raw_text(self) -> Case:
        """Text that is not (strict) JSON, or JSON a lenient parser would bend."""
        digits = "9" * self.random.choice([MAX_INT_DIGITS + 1, 20000])
        choices = [
            (self.string(30).encode("utf-8", "surrogatepass"), None),
            (b"", {"error:invalid_json"}),
            (b'{"type": "ping",}', {"error:invalid_json"}),
            (b"{'type': 'ping'}", {"error:invalid_json"}),
            (b'{"type": "ping"} {"type": "ping"}', {"error:invalid_json"}),
            (b'{"type": "ack", "seq": NaN}', {"error:invalid_json"}),
            (b'{"type": "ack", "seq": Infinity}', {"error:invalid_json"}),
            (b'{"type": "ack", "seq": 1e400}', {"error:invalid_json"}),
            (b'{"type": "ack", "seq": ' + digits.encode() + b"}", None),
            (b'{"type": "ping\x01"}', {"error:invalid_json"}),  # raw control char
            (b'{"type": "\\ud800"}', {"error:invalid_json"}),
            (b'{"type": "ping", "type": "nope"}', {"error:invalid_frame"}),
            (b"\xef\xbb\xbf" + b'{"type": "ping"}', {"error:invalid_json"}),  # BOM
            (b"  \n" + b'{"type": "ping"}' + b"\t", frozenset({"pong", RATE_LIMITED})),
        ]
        payload, expected = self.random.choice(choices)
        if expected is None:
            expected = expected_for_text(payload)
        return Case(
            "raw_text", encode_frame(TEXT, payload), frozenset(expected), _note(payload)
        )

    def deep_nesting(self) -> Case:
        depth = self.random.choice([MAX_DEPTH - 2, MAX_DEPTH + 1, 1000, 20000])
        opening, closing = self.random.choice([("[", "]"), ('{"a":', "}")])
        nested = opening * depth + "1" + closing * depth
        if self._chance(0.5):
            text = nested  # the frame itself
            expected = (
                {"error:invalid_json"} if depth > MAX_DEPTH else {"error:invalid_frame"}
            )
        else:
            head = f'{{"type":"message","text":"@{PUBLIC_ACCOUNT}","data":{{"d":'
            text = head + nested + "}}"
            expected = {"error:invalid_json"} if depth + 2 > MAX_DEPTH else ROUTED
        payload = text.encode()
        if len(payload) > MAX_FRAME_BYTES:
            expected = {"close:1009"}
        return Case("deep_nesting", encode_frame(TEXT, payload), frozenset(expected))

    def binary(self) -> Case:
        size = self.random.choice([0, 1, 16, 1000, MAX_FRAME_BYTES + 1])
        payload = self.random.randbytes(size)
        if self._chance(0.3):
            payload = b'{"type": "ping"}'  # JSON, but in a binary frame
        too_large = len(payload) > MAX_FRAME_BYTES
        expected = {"close:1009"} if too_large else {"error:invalid_frame"}
        wire = encode_frame(BINARY, payload)
        if self._chance(0.3) and len(payload) > 1:
            wire = _split(BINARY, payload, self.random)
        return Case("binary", wire, frozenset(expected), _note(payload))

    def invalid_utf8(self) -> Case:
        bad = self.random.choice(
            [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]
        )
        payload = b'{"type": "ping", "ref": "' + bad + b'"}'
        wire = encode_frame(TEXT, payload)
        if self._chance(0.5):
            wire = _split(TEXT, payload, self.random)
        return Case("invalid_utf8", wire, PROTOCOL_VIOLATION, _note(payload))

    def protocol_violation(self) -> Case:
        ping = b'{"type": "ping"}'
        wire, note = self.random.choice(
            [
                (encode_frame(self.random.choice([3, 4, 5, 6, 7, 11, 15]), ping), "op"),
                (encode_frame(TEXT, ping, rsv=self.random.randint(1, 7)), "rsv"),
                (encode_frame(CONTINUATION, ping), "orphan continuation"),
                (
                    encode_frame(TEXT, ping[:5], fin=False) + encode_frame(TEXT, ping),
                    "text inside an unfinished message",
                ),
                (encode_frame(PING, b"x" * 126), "control frame over 125 bytes"),
                (encode_frame(PING, b"x", fin=False), "fragmented control frame"),
            ]
        )
        return Case("protocol_violation", wire, PROTOCOL_VIOLATION, note)

    def oversized(self) -> Case:
        text = json.dumps({"type": "message", "text": "x" * (MAX_FRAME_BYTES + 10)})
        wire = encode_frame(TEXT, text.encode())
        if self._chance(0.5):
            wire = _split(TEXT, text.encode(), self.random)
        return Case("oversized", wire, frozenset({"close:1009"}), "64 KiB + 10 text")

    # --- helpers --------------------------------------------------------------------

    def _json_case(self, kind: str, value: object) -> Case:
        # Surrogates only ever as \u escapes: raw, they are invalid UTF-8
        # (invalid_utf8's job).
        ascii_only = self._chance(0.5) or has_surrogate(value)
        payload = json.dumps(value, ensure_ascii=ascii_only).encode()
        expected = expected_for(value)
        frame = value if depends_on_subscriptions(value) else None
        if len(payload) > MAX_FRAME_BYTES:
            expected, frame = frozenset({"close:1009"}), None
        return Case(kind, encode_frame(TEXT, payload), expected, _note(payload), frame)

    def _fragmented(self, case: Case) -> Case:
        """The same text message split into fragments (a whole message only)."""
        payload = _unmasked_payload(case.wire)
        if payload is None or len(payload) < 2:
            return case
        wire = _split(TEXT, payload, self.random)
        return Case(
            f"{case.kind}+fragmented", wire, case.expected, case.note, case.frame
        )

    def _chance(self, probability: float) -> bool:
        return self.random.random() < probability


def _split(opcode: int, payload: bytes, rng: random.Random) -> bytes:
    """`payload` as 2-6 fragments cut at random bytes (mid-character too),
    with a WebSocket ping between two of them now and then (RFC 6455 §5.4
    allows control frames inside a fragmented message)."""
    cuts = sorted(rng.sample(range(1, len(payload)), min(len(payload) - 1, 5)))
    cuts = cuts[: rng.randint(1, len(cuts))]
    pieces = [
        payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)
    ]
    wire = b""
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        wire += encode_frame(opcode if index == 0 else CONTINUATION, piece, fin=last)
        if not last and rng.random() < 0.2:
            wire += encode_frame(PING, b"between fragments")
    return wire


def _unmasked_payload(wire: bytes) -> bytes | None:
    """The payload of one masked frame built by encode_frame."""
    length = wire[1] & 0x7F
    offset = 2
    if length == 126:
        length, offset = int.from_bytes(wire[2:4]), 4
    elif length == 127:
        length, offset = int.from_bytes(wire[2:10]), 10
    mask, body = wire[offset : offset + 4], wire[offset + 4 :]
    if len(body) != length:
        return None  # more than one frame
    return bytes(byte ^ mask[index % 4] for index, byte in enumerate(body))


def _note(payload: bytes) -> str:
    more = f"… ({len(payload)} bytes)" if len(payload) > 160 else ""
    return repr(payload[:160]) + more
