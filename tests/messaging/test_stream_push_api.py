"""POST /sse/push with `stream_id` (SPEC §9): a message sent in parts over
HTTP; every refusal with its status and the one error shape. The parts reach
connections through the real Redis of the suite (tests/e2e/test_streams.py
checks them from outside)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from messaging.models import Message, StreamEntry
from tests.messaging.test_push_api import accepted, assert_error, post

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def part(stream_id: str = "s1", **fields: Any) -> dict[str, Any]:
    return {"user_id": "alice", "stream_id": stream_id, **fields}


def test_parts_get_indexes_and_the_final_part_stores_one_message(client):
    first = accepted(post(client, part(delta="Hel", sender=None)))
    second = accepted(post(client, part(delta="lo")))
    final = accepted(
        post(client, part(delta="!", final=True, data={"tokens": 3}, event="reply"))
    )

    assert (first["index"], second["index"], final["index"]) == (0, 1, 2)
    assert first["id"] == second["id"] == final["id"]
    assert (first["final"], final["final"]) == (False, True)
    assert final["recipients"][0]["user_id"] == "alice"
    assert final["recipients"][0]["seq"] == 1
    stored = Message.objects.get(id=final["id"])
    # The first part's event names the message; the final part adds fields.
    assert (stored.event, stored.data, stored.stream_id, stored.incomplete) == (
        "message",
        {"text": "Hello!", "tokens": 3},
        "s1",
        False,
    )
    assert StreamEntry.objects.get(message=stored).stream == "user:alice"


def test_a_final_part_without_delta_has_no_index(client):
    accepted(post(client, part(delta="x")))
    final = accepted(post(client, part(final=True)))
    assert final["index"] is None
    assert Message.objects.get().data == {"text": "x"}


def test_a_topic_stream_replies_with_the_topics_seq(client, settings):
    settings.BRIDGE_TOPIC_NAMESPACES = {}
    from messaging.models import TopicNamespace

    TopicNamespace.objects.create(name="room")
    body = {"topic": "room:1", "stream_id": "t"}
    accepted(post(client, {**body, "delta": "a"}))
    final = accepted(post(client, {**body, "final": True}))
    assert (final["topic"], final["seq"]) == ("room:1", 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_ids": ["a", "b"], "stream_id": "s", "delta": "x"}, "non_field_errors"),
        ({"broadcast": True, "stream_id": "s", "delta": "x"}, "non_field_errors"),
        (part(delta="x", message="y"), "message"),
        (part(delta="x", idempotency_key="k"), "idempotency_key"),
        (part(), "delta"),
        (part(delta=""), "delta"),
        (part(delta=3), "delta"),
        (part(delta="x", data={"a": 1}), "data"),
        (part(final=True, data=[1]), "data"),
        (part(final="yes"), "final"),
        (part("a b", delta="x"), "stream_id"),
        (part("s" * 65, delta="x"), "stream_id"),
        ({"user_id": "alice", "message": "x", "delta": "y"}, "delta"),
        ({"user_id": "alice", "message": "x", "final": True}, "final"),
    ],
)
def test_malformed_parts_are_400_naming_the_field(client, body, field):
    error = assert_error(post(client, body), 400, "invalid")
    assert field in error["detail"], error


def test_a_delta_over_the_message_limit_is_400(client, settings):
    settings.BRIDGE_MAX_MESSAGE_BYTES = 8
    error = assert_error(post(client, part(delta="é" * 5)), 400, "invalid")
    assert error["detail"]["delta"][0]["code"] == "too_large"
    accepted(post(client, part(delta="1234")))
    error = assert_error(post(client, part(delta="12345")), 400, "invalid")
    assert error["detail"]["delta"][0]["code"] == "too_large"


def test_a_part_after_the_final_one_is_409_stream_closed(client):
    accepted(post(client, part(delta="x", final=True)))
    assert_error(post(client, part(delta="y")), 409, "stream_closed")
    assert_error(post(client, part(final=True)), 409, "stream_closed")
    assert Message.objects.count() == 1


def test_a_stream_id_open_to_another_target_is_409_stream_conflict(client):
    accepted(post(client, part(delta="x")))
    body = {"user_id": "bob", "stream_id": "s1", "delta": "y"}
    assert_error(post(client, body), 409, "stream_conflict")


def test_open_streams_are_bounded_per_caller(client, settings):
    settings.BRIDGE_MAX_OPEN_STREAMS = 2
    accepted(post(client, part("a", delta="x")))
    accepted(post(client, part("b", delta="x")))
    assert_error(post(client, part("c", delta="x")), 409, "too_many_streams")
    accepted(post(client, part("a", final=True)))
    accepted(post(client, part("c", delta="x")))


def test_a_topic_of_an_unknown_namespace_is_404(client):
    body = {"topic": "nowhere:1", "stream_id": "s", "delta": "x"}
    assert_error(post(client, body), 404, "not_found")


def test_a_batch_refuses_stream_parts(client):
    response = client.post(
        "/sse/push/batch",
        data={"messages": [{"user_id": "a", "message": "x"}, part(delta="y")]},
        content_type="application/json",
    )
    error = assert_error(response, 400, "invalid")
    assert error["detail"]["messages"]["1"]["stream_id"][0]["code"] == "stream_part"
    assert not Message.objects.exists()
