"""Client frames parse into SPEC §2's refusal codes; server frames have SPEC shapes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from messaging.frames import error_frame, format_time, message_frame
from messaging.realtime.client_frames import FrameError, parse_client_frame

SPEC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def refusal(text: str | None) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(text)
    return caught.value


# --- invalid_json -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["not json", "{", '{"type": "ping"', "", "{'type': 'ping'}", '{"type": ping}'],
)
def test_text_that_is_not_json_is_invalid_json(text):
    assert refusal(text).code == "invalid_json"


def test_deeply_nested_json_is_invalid_json_not_a_crash():
    assert refusal("[" * 100000).code == "invalid_json"


def test_deeply_nested_object_value_is_refused_not_a_crash():
    nested = '{"a": ' * 100000 + "1" + "}" * 100000
    text = '{"type": "message", "text": "x", "data": ' + nested + "}"
    assert refusal(text).code == "invalid_json"


def test_nan_is_not_json_and_is_refused_as_invalid_json():
    # json.loads accepts NaN/Infinity; they are not JSON (RFC 8259), and a frame that
    # carried one in `data` would be relayed to clients whose parsers reject it.
    assert refusal('{"type": "message", "text": "x", "data": {"n": NaN}}').code == (
        "invalid_json"
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "message", "text": "hi \\ud800"}',
        '{"type": "message", "text": "hi", "data": {"k": "\\udfff"}}',
        '{"type": "message", "text": "hi", "data": {"\\ud800": 1}}',
    ],
    ids=["in-text", "in-data-value", "in-data-key"],
)
def test_lone_surrogate_escape_is_refused(text):
    # Valid JSON text, but the string it decodes to has no UTF-8 encoding: it can
    # be neither relayed to other clients nor sent through the channel layer.
    assert refusal(text).code in ("invalid_json", "invalid_frame")


def test_number_too_long_to_parse_is_refused_not_a_crash():
    error = refusal('{"type": "ack", "seq": ' + "9" * 5000 + "}")
    assert error.code in ("invalid_json", "invalid_frame")


# --- invalid_frame ----------------------------------------------------------------


def test_binary_frame_is_invalid_frame():
    assert refusal(None).code == "invalid_frame"


@pytest.mark.parametrize("text", ["[]", '["ping"]', "1", '"ping"', "null", "true"])
def test_json_that_is_not_an_object_is_invalid_frame(text):
    assert refusal(text).code == "invalid_frame"


@pytest.mark.parametrize(
    "frame",
    [
        {},
        {"ref": "r1"},
        {"type": "nope"},
        {"type": "PING"},
        {"type": "connected"},
        {"type": None},
        {"type": 1},
        {"type": ["ping"]},
    ],
)
def test_missing_or_unknown_type_is_invalid_frame(frame):
    assert refusal(json.dumps(frame)).code == "invalid_frame"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message"},
        {"type": "message", "text": ""},
        {"type": "message", "text": 5},
        {"type": "message", "text": ["hi"]},
        {"type": "message", "text": "hi", "data": [1, 2]},
        {"type": "message", "text": "hi", "data": "text"},
        {"type": "message", "text": "hi", "to": 5},
        {"type": "message", "text": "hi", "to": {"user_id": "bob"}},
        {"type": "ack"},
        {"type": "ack", "seq": -1},
        {"type": "ack", "seq": "3"},
        {"type": "ack", "seq": 1.5},
        {"type": "ack", "seq": True},
        {"type": "ack", "seq": None},
        # Past any seq a stream can have (a signed 64-bit column).
        {"type": "ack", "seq": 2**63},
        {"type": "ack", "seq": 10**300},
    ],
)
def test_wrong_field_types_or_values_are_invalid_frame(frame):
    assert refusal(json.dumps(frame)).code == "invalid_frame"


@pytest.mark.parametrize("ref", [5, ["r"], {"r": 1}, "r" * 65])
def test_bad_ref_is_invalid_frame_and_not_echoed(ref):
    error = refusal(json.dumps({"type": "ping", "ref": ref}))
    assert error.code == "invalid_frame"
    assert error.ref is None


def test_refusal_echoes_a_valid_ref():
    error = refusal(json.dumps({"type": "nope", "ref": "r" * 64}))
    assert error.code == "invalid_frame"
    assert error.ref == "r" * 64


def test_message_refusal_echoes_its_ref():
    error = refusal(json.dumps({"type": "message", "text": 5, "ref": "abc"}))
    assert error.ref == "abc"


# --- too_large --------------------------------------------------------------------


def test_text_over_4096_chars_is_too_large():
    error = refusal(json.dumps({"type": "message", "text": "x" * 4097, "ref": "big"}))
    assert error.code == "too_large"
    assert error.ref == "big"


def test_text_of_exactly_4096_multibyte_chars_is_accepted():
    frame = parse_client_frame(json.dumps({"type": "message", "text": "é" * 4096}))
    assert frame.text == "é" * 4096


# --- accepted frames --------------------------------------------------------------


@pytest.mark.parametrize("frame_type", ["ping", "pong", "disconnect"])
def test_bare_client_frames_are_accepted(frame_type):
    assert parse_client_frame(json.dumps({"type": frame_type})).type == frame_type


def test_unknown_extra_keys_do_not_refuse_a_frame():
    assert parse_client_frame('{"type": "ping", "extra": 1}').type == "ping"


def test_message_frame_is_parsed_with_all_fields():
    frame = parse_client_frame(
        json.dumps(
            {
                "type": "message",
                "text": "hi @ci_bot",
                "data": {"k": [1]},
                "to": "ci_bot",
                "ref": "r1",
            }
        )
    )
    assert (frame.type, frame.text, frame.data, frame.to, frame.ref) == (
        "message",
        "hi @ci_bot",
        {"k": [1]},
        "ci_bot",
        "r1",
    )


@pytest.mark.parametrize("seq", [0, 2**63 - 1])
def test_ack_frame_carries_its_seq(seq):
    frame = parse_client_frame(json.dumps({"type": "ack", "seq": seq}))
    assert (frame.type, frame.seq) == ("ack", seq)


# --- outgoing shapes --------------------------------------------------------------


def test_format_time_has_milliseconds_and_z():
    moment = datetime(2026, 11, 22, 10, 0, 1, 250999, tzinfo=UTC)
    assert format_time(moment) == "2026-11-22T10:00:01.250Z"


def test_format_time_converts_to_utc():
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 11, 22, 12, 0, 0, 0, tzinfo=plus_two)
    text = format_time(moment)
    assert SPEC_TIME.match(text)
    assert text == "2026-11-22T10:00:00.000Z"


def test_message_frame_has_exactly_spec_fields():
    frame = message_frame(
        message_id="0b6c8a56-0000-0000-0000-000000000000",
        seq=18,
        event="notification",
        sender="ci_bot",
        recipient="alice",
        data={"text": "build #42 passed"},
        created_at=datetime(2026, 11, 22, 10, 0, 1, 250000, tzinfo=UTC),
        mentions=[],
    )
    assert frame == {
        "type": "message",
        "id": "0b6c8a56-0000-0000-0000-000000000000",
        "seq": 18,
        "event": "notification",
        "from": "ci_bot",
        "to": "alice",
        "data": {"text": "build #42 passed"},
        "timestamp": "2026-11-22T10:00:01.250Z",
        "mentions": [],
    }


def test_error_frame_includes_ref_only_when_given():
    assert error_frame("invalid_json", "bad") == {
        "type": "error",
        "code": "invalid_json",
        "message": "bad",
    }
    assert error_frame("too_large", "big", "r1")["ref"] == "r1"
