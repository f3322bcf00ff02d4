"""History for users (SPEC §9): `GET /api/me/messages` and
`GET /api/topics/<topic>/messages` with a user's WebSocket token, paged with
`after_seq` or `before_seq` ("load older messages"), `limit` at most 100.

Personas (token mode unless said otherwise):
- `alice`: a token for alice (no grants): her own stream; topics she may
  subscribe to (public namespaces, topics she is a member of).
- a token for alice granting `vault:*`: also the token-only namespace.
- `operator`: an API key with `ops`: every topic, as before.
- `pusher`: an API key with `push`: none of these.
- open mode: `?user_id=` names the user.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from accounts.keys import api_key_create
from accounts.tokens import token_issue
from bridge_project.embedded_redis import EmbeddedRedis
from messaging.streams import delivery, topics
from messaging.streams.delivery import PushRequest
from tests.support.ids import fresh_user_id
from tests.support.topics import fresh_topic, make_namespace

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def namespaces(db, redis_server: EmbeddedRedis) -> Iterator[None]:
    make_namespace("room")
    make_namespace("news", subscribe="public")
    make_namespace("vault", subscribe="token")
    yield


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture(autouse=True)
def token_mode(settings) -> None:
    """Token mode for every test; the open-mode tests switch back."""
    settings.BRIDGE_AUTH_MODE = "token"


def push_n(*, n: int, user_id: str | None = None, topic: str | None = None) -> None:
    """n stored messages (data 0, 1, …) to a user or a topic."""
    for i in range(n):
        delivery.push(
            PushRequest(
                targets=(user_id,) if user_id else (),
                event="message",
                data=i,
                sender=None,
                topic=topic,
            )
        )


def token(user_id: str, *grants: str) -> str:
    return token_issue(user_id=user_id, topics=grants).token


def get(client: Client, path: str, credential: str | None = None, **params: Any):
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    return client.get(path, params, headers=headers)


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == code
    return body


def seqs(body: dict) -> list[int]:
    return [m["seq"] for m in body["messages"]]


# --- /api/me/messages ------------------------------------------------------------


def test_a_token_reads_its_own_users_stream(client):
    alice, bob = fresh_user_id("me"), fresh_user_id("me")
    push_n(user_id=alice, n=3)
    push_n(user_id=bob, n=1)
    body = ok(get(client, "/api/me/messages", token(alice)))
    assert seqs(body) == [1, 2, 3]
    assert body["next_after_seq"] is None
    assert {m["to"] for m in body["messages"]} == {alice}
    assert "type" not in body["messages"][0]


def test_after_seq_pages_forwards(client):
    alice = fresh_user_id("me")
    push_n(user_id=alice, n=5)
    first = ok(get(client, "/api/me/messages", token(alice), limit=2))
    assert (seqs(first), first["next_after_seq"]) == ([1, 2], 2)
    rest = ok(get(client, "/api/me/messages", token(alice), after_seq=4))
    assert (seqs(rest), rest["next_after_seq"]) == ([5], None)


def test_before_seq_pages_backwards_oldest_first(client):
    alice = fresh_user_id("me")
    push_n(user_id=alice, n=5)
    newest = ok(
        get(client, "/api/me/messages", token(alice), before_seq=2**62, limit=2)
    )
    assert newest == {"messages": newest["messages"], "next_before_seq": 4}
    assert seqs(newest) == [4, 5]
    older = ok(get(client, "/api/me/messages", token(alice), before_seq=4, limit=2))
    assert (seqs(older), older["next_before_seq"]) == ([2, 3], 2)
    oldest = ok(get(client, "/api/me/messages", token(alice), before_seq=2, limit=2))
    assert (seqs(oldest), oldest["next_before_seq"]) == ([1], None)
    assert [m["data"] for m in oldest["messages"]] == [0]


def test_before_seq_on_an_empty_stream_is_an_empty_page(client):
    body = ok(get(client, "/api/me/messages", token(fresh_user_id()), before_seq=9))
    assert body == {"messages": [], "next_before_seq": None}


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 101},
        {"limit": 0},
        {"limit": "x"},
        {"after_seq": -1},
        {"before_seq": 0},
        {"before_seq": "1.5"},
        {"after_seq": 1, "before_seq": 5},
    ],
)
def test_a_bad_page_parameter_is_400(client, query):
    response = get(client, "/api/me/messages", token("alice"), **query)
    assert_error(response, 400, "invalid")


def test_a_token_may_not_name_another_user(client):
    response = get(client, "/api/me/messages", token("alice"), user_id="bob")
    assert_error(response, 403, "permission_denied")
    ok(get(client, "/api/me/messages", token("alice"), user_id="alice"))


def test_me_without_credentials_is_401(client):
    assert_error(get(client, "/api/me/messages"), 401, "not_authenticated")


@pytest.mark.parametrize("bad", ["nonsense", "a.b", "brk_00000000_" + "x" * 43])
def test_me_with_a_bad_token_is_401(client, bad):
    assert_error(get(client, "/api/me/messages", bad), 401, "not_authenticated")


def test_me_with_an_expired_token_is_401(client):
    expired = token_issue(user_id="alice", ttl_seconds=-1).token
    body = assert_error(
        get(client, "/api/me/messages", expired), 401, "not_authenticated"
    )
    assert "expired" in body["message"]


def test_me_with_an_api_key_is_403(client):
    ops = api_key_create(name="o", service="o", permissions={"ops"}).raw
    assert_error(get(client, "/api/me/messages", ops), 403, "permission_denied")


def test_open_mode_names_the_user_with_user_id(client, settings):
    settings.BRIDGE_AUTH_MODE = "open"
    alice = fresh_user_id("me")
    push_n(user_id=alice, n=2)
    assert seqs(ok(get(client, "/api/me/messages", user_id=alice))) == [1, 2]


@pytest.mark.parametrize("query", [{}, {"user_id": "not valid!"}])
def test_open_mode_without_a_valid_user_id_is_400(client, settings, query):
    settings.BRIDGE_AUTH_MODE = "open"
    assert_error(get(client, "/api/me/messages", **query), 400, "invalid")


# --- /api/topics/<topic>/messages with a token -------------------------------------


def test_a_member_reads_a_members_topic(client):
    topic = fresh_topic("room")
    push_n(topic=topic, n=3)
    topics.member_add(topic=topic, user_id="alice")
    body = ok(get(client, f"/api/topics/{topic}/messages", token("alice"), limit=2))
    assert (seqs(body), body["next_after_seq"]) == ([1, 2], 2)
    older = ok(
        get(client, f"/api/topics/{topic}/messages", token("alice"), before_seq=3)
    )
    assert (seqs(older), older["next_before_seq"]) == ([1, 2], None)
    assert {m["topic"] for m in older["messages"]} == {topic}


def test_a_public_topic_and_a_granted_topic_are_readable(client):
    ok(get(client, f"/api/topics/{fresh_topic('news')}/messages", token("alice")))
    vault = fresh_topic("vault")
    ok(get(client, f"/api/topics/{vault}/messages", token("alice", "vault:*")))
    ok(get(client, f"/api/topics/{vault}/messages", token("alice", vault)))


def test_a_topic_the_user_may_not_subscribe_to_is_403(client):
    room = fresh_topic("room")
    topics.member_add(topic=room, user_id="bob")
    for path in [
        f"/api/topics/{room}/messages",
        f"/api/topics/{fresh_topic('vault')}/messages",
    ]:
        assert_error(get(client, path, token("alice")), 403, "permission_denied")


def test_a_topic_of_an_unknown_namespace_is_404(client):
    response = get(client, "/api/topics/nowhere:x/messages", token("alice"))
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("topic", ["user:bob", "room", "Room:x"])
def test_a_bad_topic_name_is_400(client, topic):
    response = get(client, f"/api/topics/{topic}/messages", token("alice"))
    assert_error(response, 400, "invalid")


def test_a_users_topic_limit_is_100_but_ops_keep_1000(client):
    topic = fresh_topic("news")
    response = get(client, f"/api/topics/{topic}/messages", token("alice"), limit=101)
    assert_error(response, 400, "invalid")
    ops = api_key_create(name="o", service="o", permissions={"ops"}).raw
    ok(get(client, f"/api/topics/{topic}/messages", ops, limit=1000))


def test_topic_messages_refuse_push_keys_and_anonymous_callers(client):
    pusher = api_key_create(name="p", service="p", permissions={"push"}).raw
    path = f"/api/topics/{fresh_topic('news')}/messages"
    assert_error(get(client, path, pusher), 403, "permission_denied")
    assert_error(get(client, path), 401, "not_authenticated")
    assert_error(get(client, path, "garbage"), 401, "not_authenticated")
