"""Unread counts (SPEC §9): `GET /api/users/<id>/unread` (ops) and
`GET /api/me/unread` (a user's WebSocket token).

Personas (token mode unless said otherwise):
- `alice`, `bob`: tokens for themselves; each sees only its own counts.
- `operator`: an API key with `ops`: any user's counts.
- `pusher`: an API key with `push`: none.
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
from messaging.streams import delivery, reading, topics
from messaging.streams.delivery import PushRequest
from messaging.streams.names import personal_stream
from tests.support.ids import fresh_user_id
from tests.support.topics import fresh_topic, make_namespace

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def namespaces(db, redis_server: EmbeddedRedis) -> Iterator[None]:
    make_namespace("room")
    yield


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture(autouse=True)
def token_mode(settings) -> None:
    settings.BRIDGE_AUTH_MODE = "token"


def push_n(n: int, *, user_id: str | None = None, topic: str | None = None) -> None:
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


def get(client: Client, path: str, credential: str | None = None, **params: Any):
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    return client.get(path, params, headers=headers)


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def token(user_id: str) -> str:
    return token_issue(user_id=user_id, topics=()).token


def a_reader() -> tuple[str, str, str]:
    """A user with 5 personal messages (2 read), member of two rooms: 3
    messages (all read) and 2 (none read)."""
    alice = fresh_user_id("u")
    first, second = sorted([fresh_topic("room"), fresh_topic("room")])
    push_n(5, user_id=alice)
    for room, n in ((first, 3), (second, 2)):
        topics.member_add(topic=room, user_id=alice)
        push_n(n, topic=room)
    reading.mark_read(alice, personal_stream(alice), 2)
    reading.mark_read(alice, first, 3)
    return alice, first, second


def test_a_token_reads_its_own_users_unread_counts(client):
    alice, first, second = a_reader()
    bob = fresh_user_id("u")
    push_n(1, user_id=bob)
    assert ok(get(client, "/api/me/unread", token(alice))) == {
        "personal": {"read_seq": 2, "unread": 3},
        "topics": [
            {"topic": first, "read_seq": 3, "unread": 0},
            {"topic": second, "read_seq": 0, "unread": 2},
        ],
    }
    assert ok(get(client, "/api/me/unread", token(bob))) == {
        "personal": {"read_seq": 0, "unread": 1},
        "topics": [],
    }


def test_a_token_cannot_name_another_user(client):
    alice, _, _ = a_reader()
    response = get(client, "/api/me/unread", token("bob"), user_id=alice)
    assert response.status_code == 403, response.content


def test_me_unread_needs_a_token(client):
    assert get(client, "/api/me/unread").status_code == 401
    pusher = api_key_create(name="p", service="p", permissions={"push"}).raw
    assert get(client, "/api/me/unread", pusher).status_code == 403


def test_operators_read_any_users_unread_counts(client):
    alice, first, second = a_reader()
    operator = api_key_create(name="o", service="o", permissions={"ops"}).raw
    body = ok(get(client, f"/api/users/{alice}/unread", operator))
    assert body["personal"] == {"read_seq": 2, "unread": 3}
    assert [t["topic"] for t in body["topics"]] == [first, second]


def test_only_operators_read_a_users_unread_counts(client):
    alice, _, _ = a_reader()
    pusher = api_key_create(name="p", service="p", permissions={"push"}).raw
    assert get(client, f"/api/users/{alice}/unread", pusher).status_code == 403
    assert get(client, f"/api/users/{alice}/unread", token(alice)).status_code in (
        401,
        403,
    )


def test_an_invalid_user_id_is_refused(client):
    operator = api_key_create(name="o", service="o", permissions={"ops"}).raw
    assert get(client, "/api/users/-bad/unread", operator).status_code == 400


def test_open_mode_names_the_user(client, settings):
    settings.BRIDGE_AUTH_MODE = "open"
    alice, _, _ = a_reader()
    body = ok(get(client, "/api/me/unread", user_id=alice))
    assert body["personal"] == {"read_seq": 2, "unread": 3}
    assert get(client, "/api/me/unread").status_code == 400
