"""POST /sse/push/batch (SPEC §6): all-or-nothing validation, replies in order."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from messaging.models import Message, StreamEntry
from messaging.streams.names import personal_stream

pytestmark = pytest.mark.django_db(transaction=True)

BATCH = "/sse/push/batch"


def post_batch(client: Client, body: Any):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(BATCH, data=raw, content_type="application/json")


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == code
    assert isinstance(body["detail"], dict)
    return body


def results(response) -> list[dict]:
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == {"results"}
    return body["results"]


@pytest.fixture
def client() -> Client:
    # A server error comes back as a 500 response to assert on, not an exception.
    return Client(raise_request_exception=False)


def test_results_come_back_in_request_order(client):
    items = [
        {"user_id": "carol", "message": "1"},
        {"user_id": "alice", "message": "2"},
        {"broadcast": True, "message": "3"},
        {"user_ids": ["bob", "dave"], "message": "4"},
    ]
    replies = results(post_batch(client, {"messages": items}))
    assert [
        [r["user_id"] for r in reply.get("recipients", [])] for reply in replies
    ] == [
        ["carol"],
        ["alice"],
        [],
        ["bob", "dave"],
    ]
    assert replies[2]["broadcast"] is True
    assert set(replies[2]) == {"id", "broadcast", "online_users"}
    stored = {str(m.id): m.data for m in Message.objects.all()}
    assert stored[replies[0]["id"]] == {"text": "1"}
    assert stored[replies[1]["id"]] == {"text": "2"}
    assert stored[replies[3]["id"]] == {"text": "4"}


def test_every_item_gets_its_own_message_id(client):
    items = [{"user_id": "alice", "message": str(i)} for i in range(5)]
    ids = [reply["id"] for reply in results(post_batch(client, {"messages": items}))]
    assert len(set(ids)) == 5


def test_same_recipient_gets_consecutive_seqs_in_request_order(client):
    client.post(
        "/sse/push",
        data=json.dumps({"user_id": "alice", "message": "before"}),
        content_type="application/json",
    )
    items = [
        {"user_id": "alice", "message": "a"},
        {"user_id": "bob", "message": "b"},
        {"user_ids": ["bob", "alice"], "message": "c"},
        {"user_id": "alice", "message": "d"},
    ]
    replies = results(post_batch(client, {"messages": items}))
    seqs = [{r["user_id"]: r["seq"] for r in reply["recipients"]} for reply in replies]
    assert seqs == [{"alice": 2}, {"bob": 1}, {"bob": 2, "alice": 3}, {"alice": 4}]
    stored = StreamEntry.objects.filter(stream=personal_stream("alice")).order_by("seq")
    assert [e.message.data["text"] for e in stored] == ["before", "a", "c", "d"]


def test_live_only_items_in_a_batch_have_null_seqs_and_are_not_stored(client):
    items = [
        {"user_id": "alice", "message": "kept"},
        {"user_id": "alice", "message": "live", "persist": False},
        {"user_id": "alice", "message": "kept too"},
    ]
    replies = results(post_batch(client, {"messages": items}))
    assert [reply["recipients"][0]["seq"] for reply in replies] == [1, None, 2]
    assert Message.objects.count() == 2


def test_one_bad_item_refuses_the_whole_batch_and_stores_nothing(client):
    items = [
        {"user_id": "alice", "message": "fine"},
        {"user_id": "bob", "message": "fine"},
        {"user_id": "not valid!", "message": "bad"},
        {"user_id": "carol", "message": "fine"},
    ]
    body = assert_error(post_batch(client, {"messages": items}), 400, "invalid")
    assert set(body["detail"]) == {"messages"}
    assert set(body["detail"]["messages"]) == {"2"}
    assert "user_id" in body["detail"]["messages"]["2"]
    assert Message.objects.count() == 0
    assert StreamEntry.objects.count() == 0


def test_every_bad_item_is_reported_by_its_string_index(client):
    items = [
        {"user_id": "alice", "message": "fine"},
        {"message": "no target"},
        {"user_id": "alice", "message": "x", "colour": "red"},
        "not an object",
    ]
    body = assert_error(post_batch(client, {"messages": items}), 400, "invalid")
    errors = body["detail"]["messages"]
    assert set(errors) == {"1", "2", "3"}
    assert "colour" in errors["2"]
    assert all(isinstance(errors[key], dict) for key in errors)


def test_a_refused_batch_does_not_use_up_seqs(client):
    post_batch(client, {"messages": [{"user_id": "alice", "message": "x"}, {}]})
    replies = results(
        post_batch(client, {"messages": [{"user_id": "alice", "data": 1}]})
    )
    assert replies[0]["recipients"][0]["seq"] == 1


def test_empty_batch_is_refused(client):
    body = assert_error(post_batch(client, {"messages": []}), 400, "invalid")
    assert "messages" in body["detail"]


def test_batch_over_max_batch_is_refused(client, settings):
    settings.BRIDGE_MAX_BATCH = 3
    items = [{"user_id": "alice", "message": str(i)} for i in range(4)]
    body = assert_error(post_batch(client, {"messages": items}), 400, "invalid")
    assert "messages" in body["detail"]
    assert Message.objects.count() == 0


def test_batch_of_exactly_max_batch_is_accepted(client, settings):
    settings.BRIDGE_MAX_BATCH = 3
    items = [{"user_id": "alice", "message": str(i)} for i in range(3)]
    assert len(results(post_batch(client, {"messages": items}))) == 3


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": {"0": {"user_id": "alice", "message": "x"}}},
        {"messages": "x"},
        {"messages": None},
        [{"user_id": "alice", "message": "x"}],
        {"messages": [{"user_id": "alice", "message": "x"}], "extra": 1},
    ],
    ids=["missing", "object", "string", "null", "bare-list", "unknown-field"],
)
def test_malformed_batch_body_is_400(client, body):
    assert_error(post_batch(client, body), 400, "invalid")
    assert Message.objects.count() == 0


def test_batch_body_over_max_body_bytes_is_413(client, settings):
    settings.BRIDGE_MAX_BODY_BYTES = 2048
    items = [{"user_id": "alice", "message": "x" * 500} for _ in range(5)]
    assert_error(post_batch(client, {"messages": items}), 413, "too_large")


def test_batch_needs_json_content_type(client):
    response = client.post(
        BATCH, data=json.dumps({"messages": []}), content_type="text/plain"
    )
    assert_error(response, 415, "unsupported_media_type")


def test_get_on_batch_is_405(client):
    assert_error(client.get(BATCH), 405, "method_not_allowed")
