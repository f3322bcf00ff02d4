"""The HTTP API as data (`bridge_client.http.calls`) and the retry rules
(`retry.py`), with no network: what each call sends, and when it is repeated."""

from __future__ import annotations

import random

import pytest

from bridge_client import Backoff, Positions, push_body
from bridge_client.errors import (
    HTTPError,
    InvalidRequest,
    ServerError,
    StreamClosed,
    StreamConflict,
    Throttled,
    TooManyStreams,
)
from bridge_client.http import calls
from bridge_client.http.retry import RetryPolicy
from bridge_client.message import PERSONAL, stream_key


def test_a_push_gets_an_idempotency_key_unless_opted_out_or_given():
    (auto,) = calls.push(push_body(user_id="alice", message="x")).requests
    assert len(auto.body["idempotency_key"]) == 32 and auto.retry_safe
    (mine,) = calls.push(
        push_body(user_id="a", message="x", idempotency_key="k")
    ).requests
    assert mine.body["idempotency_key"] == "k" and mine.retry_safe
    (none,) = calls.push(push_body(user_id="a", message="x"), idempotent=False).requests
    assert "idempotency_key" not in none.body and not none.retry_safe


def test_a_push_names_exactly_one_target():
    with pytest.raises(ValueError):
        push_body(user_id="a", topic="room:1", message="x")
    with pytest.raises(ValueError):
        push_body(message="x")
    assert push_body(broadcast=True, data=[1]) == {"broadcast": True, "data": [1]}


def test_a_batch_splits_into_requests_of_max_batch_items_in_order():
    items = [push_body(user_id="a", message=str(n)) for n in range(7)]
    call = calls.batch(items, max_batch=3)
    chunks = [r.body["messages"] for r in call.requests]
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [i["message"] for c in chunks for i in c] == [str(n) for n in range(7)]
    keys = [i["idempotency_key"] for c in chunks for i in c]
    assert len(set(keys)) == 7 and all(r.retry_safe for r in call.requests)
    # A chunk with an item without a key is not safe to repeat.
    unsafe = calls.batch(items, max_batch=3, idempotent=False)
    assert not any(r.retry_safe for r in unsafe.requests)


def test_bridge_max_batch_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BRIDGE_MAX_BATCH", "4")
    assert len(calls.batch([{"user_id": "a", "data": 1}] * 9).requests) == 3
    monkeypatch.setenv("BRIDGE_MAX_BATCH", "many")
    with pytest.raises(ValueError, match="BRIDGE_MAX_BATCH"):
        calls.batch([{"user_id": "a", "data": 1}])


def test_a_stream_part_carries_no_key_and_is_not_retry_safe():
    (part,) = calls.stream_part("s1", "Hel", topic="room:1", final=True).requests
    assert part.body == {
        "topic": "room:1",
        "stream_id": "s1",
        "delta": "Hel",
        "final": True,
    }
    assert not part.retry_safe


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (409, "stream_closed", StreamClosed),
        (409, "stream_conflict", StreamConflict),
        (409, "too_many_streams", TooManyStreams),
        (400, "invalid", InvalidRequest),
        (429, "throttled", Throttled),
        (502, "http_502", ServerError),
        (418, "http_418", HTTPError),
    ],
)
def test_error_replies_become_typed_exceptions(status, code, kind):
    body = (
        {"error": code, "message": "m", "detail": {"f": [1]}}
        if not code.startswith("http_")
        else "<html>bad gateway</html>"
    )
    error = calls.error_for(status, {"Retry-After": "3"}, body)
    assert type(error) is kind
    assert (error.status, error.code) == (status, code)
    assert error.retry_after == 3.0


def test_retries_only_what_cannot_duplicate():
    policy, backoff = RetryPolicy(), Backoff(rng=random.Random(1))
    safe = calls.push(push_body(user_id="a", message="x")).requests[0]
    unsafe = calls.stream_part("s", "x", user_id="a").requests[0]
    assert policy.after_reply(safe, 503, {}, 0, backoff) is not None
    assert policy.after_reply(safe, 429, {"Retry-After": "7"}, 0, backoff) == 7.0
    assert policy.after_reply(safe, 400, {}, 0, backoff) is None
    assert policy.after_reply(unsafe, 503, {}, 0, backoff) is None
    assert policy.after_failure(unsafe, sent=True, attempt=0, backoff=backoff) is None
    assert policy.after_failure(unsafe, sent=False, attempt=0, backoff=backoff)
    assert policy.after_failure(safe, sent=True, attempt=3, backoff=backoff) is None
    # A Retry-After longer than a minute is not waited out.
    assert policy.after_reply(safe, 429, {"Retry-After": "600"}, 0, backoff) is None


def test_positions_round_trip_and_refuse_to_go_back():
    positions = Positions()
    assert positions.advance(PERSONAL, 3) and positions.advance("room:1", 5)
    assert not positions.advance(PERSONAL, 3) and not positions.advance("room:1", 4)
    assert Positions.from_dict(positions.to_dict()) == positions
    assert positions.to_dict() == {"personal": 3, "topics": {"room:1": 5}}


def test_a_bots_copy_of_a_topic_mention_counts_in_its_personal_stream():
    assert stream_key({"topic": "room:1", "to": None}) == "room:1"
    assert stream_key({"topic": "room:1", "to": "ci_bot"}) == PERSONAL
    assert stream_key({"to": "alice"}) == PERSONAL
