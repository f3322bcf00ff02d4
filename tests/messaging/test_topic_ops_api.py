"""The topic operations API (SPEC §8 "HTTP"): topics in use, one topic, its
presence, members, history, a user's topics; who may call them; and every
refusal in the one error shape.

Personas (token mode), each an API key:
- `operator`: `ops`: every topic endpoint.
- `manager`: `topics`: membership endpoints only.
- `pusher`: `push`: none of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.keys import api_key_create
from bridge_project.embedded_redis import EmbeddedRedis
from messaging.models import TopicMember
from messaging.streams import publish
from tests.support.topics import (
    clear_topic_presence,
    fresh_topic,
    make_namespace,
    subscribe,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def namespaces(db, redis_server: EmbeddedRedis) -> Iterator[None]:
    clear_topic_presence(redis_server.url)
    make_namespace("room")
    make_namespace("ticker", subscribe="public", history_size=0)
    make_namespace("quiet", presence=False)
    yield


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def push(client: Client, body: dict) -> dict:
    response = client.post(
        "/sse/push", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 202, response.content
    return response.json()


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == code
    return body


# --- GET /api/topics ----------------------------------------------------------------


def test_topics_lists_those_with_subscribers_members_or_messages(client):
    listened, joined, spoken = fresh_topic(), fresh_topic(), fresh_topic()
    subscribe(listened, "alice")
    subscribe(listened, "bob")
    TopicMember.objects.create(topic=joined, user_id="alice")
    push(client, {"topic": spoken, "message": "one"})
    push(client, {"topic": spoken, "message": "two"})
    push(client, {"topic": fresh_topic("ticker"), "message": "gone"})  # not kept

    body = ok(client.get("/api/topics"))

    assert body["count"] == 3
    assert body["topics"] == sorted(
        [
            {"topic": listened, "seq": 0, "subscribers": 2, "members": 0},
            {"topic": joined, "seq": 0, "subscribers": 0, "members": 1},
            {"topic": spoken, "seq": 2, "subscribers": 0, "members": 0},
        ],
        key=lambda t: t["topic"],
    )


def test_topics_of_a_live_only_namespace_have_a_null_seq(client):
    topic = fresh_topic("ticker")
    subscribe(topic, "alice")
    body = ok(client.get("/api/topics?namespace=ticker"))
    assert body["topics"] == [
        {"topic": topic, "seq": None, "subscribers": 1, "members": 0}
    ]


def test_topics_filter_by_namespace_and_page(client):
    rooms = sorted(fresh_topic() for _ in range(5))
    for topic in rooms:
        TopicMember.objects.create(topic=topic, user_id="alice")
    TopicMember.objects.create(topic=fresh_topic("quiet"), user_id="alice")

    body = ok(client.get("/api/topics?namespace=room&offset=1&limit=2"))

    assert body["count"] == 5
    assert [t["topic"] for t in body["topics"]] == rooms[1:3]


@pytest.mark.parametrize(
    "query", ["namespace=Room", "namespace=user", "namespace=", "offset=-1", "limit=0"]
)
def test_topics_with_a_bad_parameter_is_400(client, query):
    assert_error(client.get(f"/api/topics?{query}"), 400, "invalid")


def test_topics_of_an_unknown_namespace_is_404(client):
    assert_error(client.get("/api/topics?namespace=nowhere"), 404, "not_found")


# --- GET /api/topics/<topic> --------------------------------------------------------


def test_one_topic_has_its_numbers_and_namespace_settings(client):
    topic = fresh_topic()
    subscribe(topic, "alice")
    subscribe(topic, "alice")
    subscribe(topic, "bob")
    TopicMember.objects.create(topic=topic, user_id="carol")
    push(client, {"topic": topic, "data": 1})

    body = ok(client.get(f"/api/topics/{topic}"))

    assert body == {
        "topic": topic,
        "seq": 1,
        "subscribers": 3,
        "online_users": 2,
        "members": 1,
        "namespace": {
            "name": "room",
            "subscribe": "members",
            "client_publish": "none",
            "history_size": 1000,
            "history_ttl": 604800,
            "presence": True,
            "join_leave": False,
            "receipts": False,
        },
    }


def test_a_topic_nobody_used_yet_answers_zeros(client):
    body = ok(client.get("/api/topics/room:new@x=y.z"))
    assert (body["seq"], body["subscribers"], body["members"]) == (0, 0, 0)


@pytest.mark.parametrize(
    "path",
    [
        "/api/topics/room",
        "/api/topics/user:alice",
        "/api/topics/Room:x",
        "/api/topics/room:a%20b",
        "/api/topics/room:%C3%A9",
        "/api/topics/room:" + "x" * 129,
        "/api/topics/room/presence",
        "/api/topics/room/members",
        "/api/topics/room/messages",
    ],
)
def test_a_badly_named_topic_in_the_path_is_400(client, path):
    body = assert_error(client.get(path), 400, "invalid")
    assert "topic" in body["detail"]


@pytest.mark.parametrize("suffix", ["", "/presence", "/members", "/messages"])
def test_a_topic_of_an_unknown_namespace_is_404(client, suffix):
    assert_error(client.get(f"/api/topics/nowhere:x{suffix}"), 404, "not_found")


# --- presence -----------------------------------------------------------------------


def test_presence_lists_subscribed_users_with_their_connections(client):
    topic = fresh_topic()
    subscribe(topic, "bob")
    subscribe(topic, "alice")
    subscribe(topic, "alice")

    body = ok(client.get(f"/api/topics/{topic}/presence"))
    assert body == {
        "users": [
            {"user_id": "alice", "connections": 2},
            {"user_id": "bob", "connections": 1},
        ],
        "count": 2,
    }
    page = ok(client.get(f"/api/topics/{topic}/presence?offset=1&limit=1"))
    assert page == {"users": [{"user_id": "bob", "connections": 1}], "count": 2}


def test_presence_of_a_namespace_without_presence_is_403(client):
    topic = fresh_topic("quiet")
    subscribe(topic, "alice")
    body = assert_error(
        client.get(f"/api/topics/{topic}/presence"), 403, "permission_denied"
    )
    assert "presence" in body["message"]


# --- members ------------------------------------------------------------------------


def test_put_adds_a_member_once(client):
    topic = fresh_topic()
    assert ok(client.put(f"/api/topics/{topic}/members/alice")) == {"added": True}
    assert ok(client.put(f"/api/topics/{topic}/members/alice")) == {"added": False}
    assert list(TopicMember.objects.values_list("topic", "user_id")) == [
        (topic, "alice")
    ]


def test_members_are_listed_by_user_id_with_when_they_were_added(client):
    topic = fresh_topic()
    for user_id in ("carol", "alice", "bob"):
        client.put(f"/api/topics/{topic}/members/{user_id}")

    body = ok(client.get(f"/api/topics/{topic}/members"))
    assert body["count"] == 3
    assert [m["user_id"] for m in body["members"]] == ["alice", "bob", "carol"]
    assert all(m["added_at"].endswith("Z") for m in body["members"])
    page = ok(client.get(f"/api/topics/{topic}/members?offset=2&limit=5"))
    assert [m["user_id"] for m in page["members"]] == ["carol"]


def test_delete_removes_the_member_and_ends_its_subscriptions(client):
    topic = fresh_topic()
    client.put(f"/api/topics/{topic}/members/alice")
    with mock.patch.object(publish, "end_subscriptions_blocking") as end:
        assert ok(client.delete(f"/api/topics/{topic}/members/alice")) == {
            "removed": True
        }
    end.assert_called_once_with(user_id="alice", topic=topic, reason="removed")
    assert not TopicMember.objects.exists()


def test_delete_of_a_non_member_is_false_and_still_rechecks(client):
    topic = fresh_topic()
    with mock.patch.object(publish, "end_subscriptions_blocking") as end:
        assert ok(client.delete(f"/api/topics/{topic}/members/alice")) == {
            "removed": False
        }
    end.assert_called_once()


def test_delete_publishes_the_recheck_on_the_real_layer(client):
    topic = fresh_topic()
    client.put(f"/api/topics/{topic}/members/alice")
    assert ok(client.delete(f"/api/topics/{topic}/members/alice"))["removed"] is True


def test_delete_while_redis_fails_is_still_200_and_logged(client, caplog):
    topic = fresh_topic()
    client.put(f"/api/topics/{topic}/members/alice")
    failing = mock.patch.object(
        publish,
        "publish_blocking",
        side_effect=publish.LayerUnavailable("Redis is unreachable"),
    )
    with failing, caplog.at_level("WARNING"):
        response = client.delete(f"/api/topics/{topic}/members/alice")
    assert ok(response) == {"removed": True}
    assert not TopicMember.objects.exists()
    assert "subscriptions were not ended" in caplog.text


@pytest.mark.parametrize("method", ["put", "delete"])
@pytest.mark.parametrize("user_id", ["-bad", "a" * 65, "al%20ice", "al@ice"])
def test_membership_with_a_bad_user_id_is_400(client, method, user_id):
    response = getattr(client, method)(f"/api/topics/room:x/members/{user_id}")
    body = assert_error(response, 400, "invalid")
    assert "user_id" in body["detail"]
    assert not TopicMember.objects.exists()


@pytest.mark.parametrize("method", ["put", "delete"])
def test_membership_of_an_unknown_namespace_is_404(client, method):
    response = getattr(client, method)("/api/topics/nowhere:x/members/alice")
    assert_error(response, 404, "not_found")
    assert not TopicMember.objects.exists()


def test_membership_of_a_bad_topic_is_400(client):
    assert_error(client.put("/api/topics/user:bob/members/alice"), 400, "invalid")


def test_post_to_members_is_405(client):
    assert_error(
        client.post("/api/topics/room:x/members/alice"), 405, "method_not_allowed"
    )


# --- messages -----------------------------------------------------------------------


def test_topic_messages_are_paged_as_the_user_history_api(client):
    topic = fresh_topic()
    for n in range(3):
        push(client, {"topic": topic, "data": n, "sender": "ci"})

    first = ok(client.get(f"/api/topics/{topic}/messages?limit=2"))
    assert [m["seq"] for m in first["messages"]] == [1, 2]
    assert first["next_after_seq"] == 2
    assert "type" not in first["messages"][0]
    assert first["messages"][0]["topic"] == topic
    assert first["messages"][0]["from"] == "ci"
    rest = ok(client.get(f"/api/topics/{topic}/messages?after_seq=2"))
    assert [m["data"] for m in rest["messages"]] == [2]
    assert rest["next_after_seq"] is None


def test_a_live_only_topic_has_no_messages(client):
    topic = fresh_topic("ticker")
    push(client, {"topic": topic, "data": 1})
    assert ok(client.get(f"/api/topics/{topic}/messages")) == {
        "messages": [],
        "next_after_seq": None,
    }


@pytest.mark.parametrize(
    "query", ["after_seq=-1", "after_seq=x", "limit=0", "limit=1001"]
)
def test_topic_messages_with_a_bad_parameter_is_400(client, query):
    assert_error(client.get(f"/api/topics/room:x/messages?{query}"), 400, "invalid")


# --- GET /api/users/<id>/topics -----------------------------------------------------


def test_a_users_topics_are_those_it_is_a_member_of(client):
    a, b = sorted([fresh_topic(), fresh_topic("quiet")])
    client.put(f"/api/topics/{b}/members/alice")
    client.put(f"/api/topics/{a}/members/alice")
    client.put(f"/api/topics/{a}/members/bob")
    assert ok(client.get("/api/users/alice/topics")) == {"topics": [a, b]}
    assert ok(client.get("/api/users/nobody/topics")) == {"topics": []}


def test_a_users_topics_with_a_bad_user_id_is_400(client):
    assert_error(client.get("/api/users/-bad/topics"), 400, "invalid")


# --- /api/stats ---------------------------------------------------------------------


def test_stats_count_topics_and_subscriptions(client):
    first, second = fresh_topic(), fresh_topic()
    subscribe(first, "alice")
    subscribe(first, "bob")
    subscribe(second, "alice")
    body = ok(client.get("/api/stats"))
    assert (body["topics"], body["subscriptions"]) == (2, 3)


# --- who may call (token mode) ------------------------------------------------------

READS = [
    "/api/topics",
    "/api/topics/room:x",
    "/api/topics/room:x/presence",
    "/api/topics/room:x/messages",
]
MEMBERSHIP = [
    ("get", "/api/topics/room:x/members"),
    ("put", "/api/topics/room:x/members/alice"),
    ("delete", "/api/topics/room:x/members/alice"),
    ("get", "/api/users/alice/topics"),
]


@pytest.fixture
def keys(settings) -> dict[str, str]:
    settings.BRIDGE_AUTH_MODE = "token"
    made = {}
    for persona, permissions in [
        ("operator", {"ops"}),
        ("manager", {"topics"}),
        ("pusher", {"push"}),
    ]:
        made[persona] = api_key_create(
            name=persona, service=f"{persona}-svc", permissions=permissions
        ).raw
    return made


def call(client: Client, method: str, path: str, key: str | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return getattr(client, method)(path, headers=headers)


@pytest.mark.parametrize("path", READS)
def test_topic_reads_need_ops(client, keys, path):
    ok(call(client, "get", path, keys["operator"]))
    assert_error(call(client, "get", path, keys["manager"]), 403, "permission_denied")
    assert_error(call(client, "get", path, keys["pusher"]), 403, "permission_denied")
    assert_error(call(client, "get", path), 401, "not_authenticated")


@pytest.mark.parametrize(("method", "path"), MEMBERSHIP)
def test_membership_needs_ops_or_topics(client, keys, method, path):
    ok(call(client, method, path, keys["operator"]))
    ok(call(client, method, path, keys["manager"]))
    assert_error(call(client, method, path, keys["pusher"]), 403, "permission_denied")
    assert_error(call(client, method, path), 401, "not_authenticated")


@pytest.mark.parametrize(
    ("method", "path"), [("get", path) for path in READS] + MEMBERSHIP
)
def test_a_staff_session_may_call_every_topic_endpoint(client, keys, method, path):
    client.force_login(get_user_model().objects.create_user("boss", is_staff=True))
    ok(call(client, method, path))


def test_a_non_staff_session_may_not(client, keys):
    client.force_login(get_user_model().objects.create_user("someone"))
    assert_error(call(client, "get", "/api/topics"), 403, "permission_denied")
    assert_error(
        call(client, "put", "/api/topics/room:x/members/a"), 403, "permission_denied"
    )
