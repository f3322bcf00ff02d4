"""The handshake query's syntax: anything malformed is refused, 4400 (SPEC §1, §2)."""

from __future__ import annotations

import pytest

from messaging.realtime.handshake import Handshake, HandshakeRefused, parse_handshake


def parse(query: bytes) -> Handshake:
    """parse_handshake on the scope of a plain `GET /ws?<query>` (open mode)."""
    scope = {
        "type": "websocket",
        "path": "/ws",
        "query_string": query,
        "headers": [(b"host", b"localhost")],
        "subprotocols": [],
    }
    return parse_handshake(scope)


def refused(query: bytes) -> HandshakeRefused:
    with pytest.raises(HandshakeRefused) as caught:
        parse(query)
    return caught.value


@pytest.mark.parametrize(
    "user_id",
    ["a", "7", "alice", "Alice.B-c_d", "ci_bot", "a" * 64, "x-", "x."],
)
def test_valid_user_ids_are_accepted(user_id):
    handshake = parse(f"user_id={user_id}".encode())
    assert (handshake.user_id, handshake.last_seq) == (user_id, None)


def test_percent_encoded_user_id_is_decoded():
    assert parse(b"user_id=a%2Eb").user_id == "a.b"


@pytest.mark.parametrize(
    "query",
    [
        b"user_id=-alice",
        b"user_id=_alice",
        b"user_id=.alice",
        b"user_id=" + b"a" * 65,
        b"user_id=al%20ice",
        b"user_id=al+ice",
        b"user_id=alice%0A",
        b"user_id=alice%00",
        b"user_id=al/ice",
        b"user_id=%C3%A9lodie",
        b"user_id=alice%40example.com",
    ],
)
def test_invalid_user_id_is_refused_with_4400(query):
    refusal = refused(query)
    assert (refusal.close_code, refusal.error_code) == (4400, "bad_request")
    assert "user_id" in refusal.message


@pytest.mark.parametrize("query", [b"", b"user_id=", b"userid=alice", b"last_seq=1"])
def test_missing_user_id_is_refused_with_4400_in_open_mode(query):
    refusal = refused(query)
    assert (refusal.close_code, refusal.error_code) == (4400, "bad_request")


def test_user_id_given_twice_is_refused_with_4400():
    refusal = refused(b"user_id=alice&user_id=bob")
    assert (refusal.close_code, refusal.error_code) == (4400, "bad_request")


def test_last_seq_given_twice_is_refused_with_4400():
    refusal = refused(b"user_id=alice&last_seq=1&last_seq=2")
    assert (refusal.close_code, refusal.error_code) == (4400, "bad_request")


def test_query_that_is_not_utf8_is_refused_with_4400():
    refusal = refused(b"user_id=al%FFice")
    assert (refusal.close_code, refusal.error_code) == (4400, "bad_request")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0", 0), ("17", 17), (str(2**63 - 1), 2**63 - 1)],
)
def test_last_seq_is_parsed(raw, expected):
    handshake = parse(f"user_id=alice&last_seq={raw}".encode())
    assert (handshake.user_id, handshake.last_seq) == ("alice", expected)


def test_no_last_seq_means_live_only():
    assert parse(b"user_id=alice").last_seq is None


@pytest.mark.parametrize(
    "raw",
    [
        "-1",
        "abc",
        "1.5",
        "1e3",
        "+1",
        "%201",
        "0x10",
        "%EF%BC%91",  # FULLWIDTH DIGIT ONE: str.isdigit() says yes
        "%C2%B2",  # SUPERSCRIPT TWO
        str(2**63),
        "9" * 100,
    ],
)
def test_malformed_last_seq_is_refused_with_4400(raw):
    refusal = refused(f"user_id=alice&last_seq={raw}".encode())
    assert (refusal.close_code, refusal.error_code) == (4400, "bad_request")
    assert "last_seq" in refusal.message
