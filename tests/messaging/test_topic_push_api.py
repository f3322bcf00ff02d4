"""POST /sse/push and /sse/push/batch to a topic (SPEC §8 "HTTP"): the reply,
one stored copy whatever the audience, live-only namespaces, mention copies,
and every refusal in the one error shape."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client

from messaging.models import Message, StreamEntry
from messaging.streams import history
from messaging.streams.names import personal_stream
from tests.support.topics import fresh_topic, make_namespace, subscribe

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

PUSH = "/sse/push"
BATCH = "/sse/push/batch"


def post(client: Client, url: str, body: Any, **kwargs: Any):
    return client.post(
        url, data=json.dumps(body), content_type="application/json", **kwargs
    )


def accepted(response) -> dict:
    assert response.status_code == 202, response.content
    return response.json()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == code
    return body


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture(autouse=True)
def namespaces(db) -> None:
    make_namespace("room")
    make_namespace("ticker", subscribe="public", history_size=0)


# --- single push --------------------------------------------------------------------


def test_push_to_a_topic_replies_with_the_topic_its_seq_and_subscribers(client):
    topic = fresh_topic()
    subscribe(topic, "alice")
    subscribe(topic, "alice")
    subscribe(topic, "bob")

    first = accepted(post(client, PUSH, {"topic": topic, "message": "one"}))
    second = accepted(post(client, PUSH, {"topic": topic, "message": "two"}))

    assert set(first) == {"id", "topic", "seq", "subscribers", "recipients"}
    uuid.UUID(first["id"])
    assert (first["topic"], first["seq"], first["subscribers"]) == (topic, 1, 3)
    assert first["recipients"] == []
    assert second["seq"] == 2


def test_a_topic_message_is_stored_once_whatever_the_number_of_subscribers(client):
    topic = fresh_topic()
    for n in range(25):
        subscribe(topic, f"user{n}")

    reply = accepted(post(client, PUSH, {"topic": topic, "data": {"n": 1}}))

    assert reply["subscribers"] == 25
    assert Message.objects.count() == 1
    entry = StreamEntry.objects.get()
    assert (entry.stream, entry.seq, entry.message_id) == (
        topic,
        1,
        uuid.UUID(reply["id"]),
    )
    assert Message.objects.get().topic == topic


def test_push_to_a_live_only_namespace_has_a_null_seq_and_stores_nothing(client):
    topic = fresh_topic("ticker")
    subscribe(topic, "alice")

    reply = accepted(post(client, PUSH, {"topic": topic, "message": "tick"}))

    assert (reply["seq"], reply["subscribers"]) == (None, 1)
    assert Message.objects.count() == 0
    assert StreamEntry.objects.count() == 0


def test_persist_false_to_a_topic_is_live_only(client):
    topic = fresh_topic()
    reply = accepted(
        post(client, PUSH, {"topic": topic, "message": "x", "persist": False})
    )
    assert reply["seq"] is None
    assert (Message.objects.count(), StreamEntry.objects.count()) == (0, 0)


def test_sender_is_kept_on_a_topic_message(client):
    topic = fresh_topic()
    accepted(post(client, PUSH, {"topic": topic, "data": 1, "sender": "deployer"}))
    (page, _) = history.messages_page(topic, after_seq=0, limit=10)
    assert page[0]["from"] == "deployer"
    assert page[0]["topic"] == topic
    assert page[0]["to"] is None


def test_a_mention_in_a_topic_gives_the_bot_a_personal_copy_saying_where(
    client, default_public_accounts
):
    topic = fresh_topic()

    reply = accepted(post(client, PUSH, {"topic": topic, "message": "@ci_bot look"}))

    assert reply["seq"] == 1
    assert reply["recipients"] == [
        {
            "user_id": "ci_bot",
            "seq": 1,
            "online": False,
            "connections": 0,
            "via": "mention",
        }
    ]
    # One message, in the topic and in the bot's personal stream.
    assert Message.objects.count() == 1
    assert sorted(StreamEntry.objects.values_list("stream", flat=True)) == sorted(
        [topic, personal_stream("ci_bot")]
    )
    (page, _) = history.messages_page(personal_stream("ci_bot"), after_seq=0, limit=5)
    assert page[0]["topic"] == topic
    assert page[0]["mentions"] == ["ci_bot"]
    assert page[0]["to"] == "ci_bot"


def test_a_mention_in_a_live_only_topic_is_not_stored_either(
    client, default_public_accounts
):
    reply = accepted(
        post(client, PUSH, {"topic": fresh_topic("ticker"), "message": "@ci_bot hi"})
    )
    assert reply["seq"] is None
    assert reply["recipients"][0]["seq"] is None
    assert (Message.objects.count(), StreamEntry.objects.count()) == (0, 0)


def test_an_idempotent_topic_push_is_replayed_not_sent_again(client):
    topic = fresh_topic()
    body = {"topic": topic, "message": "once", "idempotency_key": "k-1"}
    first = post(client, PUSH, body)
    again = post(client, PUSH, body)
    assert accepted(again) == accepted(first)
    assert again["Idempotent-Replayed"] == "true"
    assert StreamEntry.objects.filter(stream=topic).count() == 1


# --- single push: refusals ----------------------------------------------------------


def test_push_to_an_unknown_namespace_is_404_and_stores_nothing(client):
    body = assert_error(
        post(client, PUSH, {"topic": "nowhere:x", "message": "x"}), 404, "not_found"
    )
    assert "nowhere" in body["message"]
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    "topic",
    [
        "room",
        "room:",
        ":x",
        "Room:x",
        "room:a b",
        "room:" + "x" * 129,
        "user:alice",
        "1room:x",
        "room:-ok:but:é",
        "",
        42,
        None,
        ["room:x"],
    ],
)
def test_push_to_a_badly_named_topic_is_400_naming_the_field(client, topic):
    body = assert_error(
        post(client, PUSH, {"topic": topic, "message": "x"}), 400, "invalid"
    )
    assert list(body["detail"]) == ["topic"]
    assert Message.objects.count() == 0


def test_odd_but_valid_topic_names_are_accepted(client):
    topic = f"room:a@b=c.d-e_f:{uuid.uuid4().hex[:6]}"
    assert accepted(post(client, PUSH, {"topic": topic, "data": 1}))["seq"] == 1


@pytest.mark.parametrize(
    "targets",
    [
        {"user_id": "alice"},
        {"user_ids": ["alice"]},
        {"broadcast": True},
    ],
)
def test_topic_with_another_target_is_refused(client, targets):
    body = assert_error(
        post(client, PUSH, {"topic": fresh_topic(), "message": "x", **targets}),
        400,
        "invalid",
    )
    assert body["detail"]["non_field_errors"][0]["code"] == "target"


# --- batch --------------------------------------------------------------------------


def test_batch_gives_consecutive_seqs_per_topic_in_request_order(client):
    red, blue = fresh_topic(), fresh_topic()
    accepted(post(client, PUSH, {"topic": red, "message": "before"}))
    items = [
        {"topic": red, "message": "a"},
        {"topic": blue, "message": "b"},
        {"user_id": "alice", "message": "c"},
        {"topic": red, "message": "d"},
        {"topic": blue, "message": "e"},
        {"topic": red, "message": "f"},
    ]
    reply = accepted(post(client, BATCH, {"messages": items}))["results"]
    assert [(r.get("topic"), r.get("seq")) for r in reply] == [
        (red, 2),
        (blue, 1),
        (None, None),
        (red, 3),
        (blue, 2),
        (red, 4),
    ]
    assert reply[2]["recipients"][0]["seq"] == 1
    stored = StreamEntry.objects.filter(stream=red).order_by("seq")
    assert [e.message.data["text"] for e in stored] == ["before", "a", "d", "f"]


def test_batch_with_an_unknown_namespace_is_400_by_index_and_sends_nothing(client):
    items = [
        {"topic": fresh_topic(), "message": "fine"},
        {"topic": "nowhere:x", "message": "no namespace"},
        {"user_id": "alice", "message": "fine"},
        {"topic": "elsewhere:y", "message": "no namespace"},
    ]
    body = assert_error(post(client, BATCH, {"messages": items}), 400, "invalid")
    errors = body["detail"]["messages"]
    assert set(errors) == {"1", "3"}
    assert errors["1"]["topic"][0]["code"] == "not_found"
    assert (Message.objects.count(), StreamEntry.objects.count()) == (0, 0)


def test_batch_with_a_badly_named_topic_is_400_by_index(client):
    items = [{"topic": fresh_topic(), "message": "fine"}, {"topic": "bad", "data": 1}]
    body = assert_error(post(client, BATCH, {"messages": items}), 400, "invalid")
    assert list(body["detail"]["messages"]) == ["1"]
    assert "topic" in body["detail"]["messages"]["1"]
    assert Message.objects.count() == 0


# --- metrics ------------------------------------------------------------------------


def metric(client: Client, name: str) -> float:
    text = client.get("/metrics").content.decode()
    assert f"# TYPE {name}" in text, name
    values = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(values[0].split()[1]) if values else 0.0


def test_topic_messages_are_counted_and_subscriptions_have_a_gauge(client):
    before = metric(client, "bridge_topic_messages_total")
    items = [
        {"topic": fresh_topic(), "data": 1},
        {"user_id": "alice", "data": 2},
        {"topic": fresh_topic("ticker"), "data": 3},
    ]
    accepted(post(client, BATCH, {"messages": items}))
    assert metric(client, "bridge_topic_messages_total") == before + 2
    metric(client, "bridge_subscriptions_open")  # defined; the consumer moves it
