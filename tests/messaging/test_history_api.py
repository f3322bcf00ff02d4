"""GET /api/users/<id>/messages (SPEC §6): a user's stored messages, oldest
first, paged by after_seq; ops only; readable while Redis is down.

Personas in token mode:
- `operator`: a service key with `ops`.
- `pusher`: a service key with `push` only; may not read history.
- a staff session (the admin), and a non-staff session.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts import selectors
from accounts.keys import api_key_create
from accounts.models import PublicAccount
from messaging.streams import delivery
from messaging.streams.delivery import PushRequest
from tests.support.ids import fresh_user_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

SPEC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MESSAGE_FIELDS = {"id", "seq", "event", "from", "to", "data", "timestamp", "mentions"}


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def history_url(user_id: str, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/users/{user_id}/messages" + (f"?{query}" if query else "")


def push(*targets: str, data: Any = None, **fields: Any) -> delivery.PushReceipt:
    return delivery.push(
        PushRequest(
            targets=targets,
            event=fields.pop("event", "message"),
            data=data,
            sender=fields.pop("sender", None),
            **fields,
        )
    )


def page(client: Client, user_id: str, **params: Any) -> dict:
    response = client.get(history_url(user_id, **params))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"messages", "next_after_seq"}
    return body


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == code
    return body


# --- content and order ----------------------------------------------------------------


def test_messages_come_oldest_first_as_frames_without_type(client):
    user = fresh_user_id("hist")
    first = push(user, data={"n": 1}, event="build.done", sender="ci_bot")
    second = push(user, "someone_else", data=[2])
    body = page(client, user)
    assert body["next_after_seq"] is None
    messages = body["messages"]
    assert [set(m) for m in messages] == [MESSAGE_FIELDS, MESSAGE_FIELDS]
    assert [(m["id"], m["seq"]) for m in messages] == [
        (first.message_id, 1),
        (second.message_id, 2),
    ]
    assert messages[0]["event"] == "build.done"
    assert messages[0]["from"] == "ci_bot"
    assert messages[0]["data"] == {"n": 1}
    assert messages[1]["from"] is None
    assert messages[1]["data"] == [2]
    assert {m["to"] for m in messages} == {user}
    assert all(SPEC_TIME.match(m["timestamp"]) for m in messages)
    assert [m["mentions"] for m in messages] == [[], []]


@pytest.fixture
def ci_bot() -> Iterator[str]:
    """The `ci_bot` public account, whatever earlier tests' flushes removed
    (the handle cache is per process)."""
    PublicAccount.objects.get_or_create(handle="ci_bot")
    selectors.invalidate_cache()
    yield "ci_bot"
    selectors.invalidate_cache()


def test_each_recipient_sees_its_own_seq_and_mentions(client, ci_bot):
    alice = fresh_user_id("hist")
    push(alice, data=0)
    receipt = push(alice, data={"text": "ping @ci_bot"}, text="ping @ci_bot")
    (for_alice,) = page(client, alice, after_seq=1)["messages"]
    assert (for_alice["id"], for_alice["seq"], for_alice["to"]) == (
        receipt.message_id,
        2,
        alice,
    )
    assert for_alice["mentions"] == []
    bot_seq = {r.user_id: r.seq for r in receipt.recipients}["ci_bot"]
    (for_bot,) = page(client, "ci_bot", after_seq=bot_seq - 1)["messages"]
    assert (for_bot["id"], for_bot["to"], for_bot["mentions"]) == (
        receipt.message_id,
        "ci_bot",
        ["ci_bot"],
    )


def test_live_only_pushes_are_not_in_history(client):
    user = fresh_user_id("hist")
    push(user, data="kept")
    push(user, data="live only", persist=False)
    assert [m["data"] for m in page(client, user)["messages"]] == ["kept"]


def test_user_with_no_messages_gets_an_empty_page(client):
    assert page(client, fresh_user_id("hist")) == {
        "messages": [],
        "next_after_seq": None,
    }


# --- paging ---------------------------------------------------------------------------


def test_next_after_seq_pages_through_everything_then_is_null(client):
    user = fresh_user_id("hist")
    ids = [push(user, data=n).message_id for n in range(7)]
    seen, after, pages = [], 0, 0
    while after is not None:
        body = page(client, user, after_seq=after, limit=3)
        assert len(body["messages"]) <= 3
        seen += body["messages"]
        after = body["next_after_seq"]
        if after is not None:
            assert after == body["messages"][-1]["seq"]
        pages += 1
        assert pages <= 3, "paging did not end"
    assert [m["seq"] for m in seen] == list(range(1, 8))
    assert [m["id"] for m in seen] == ids


def test_a_page_that_ends_exactly_at_the_last_message_has_null_next(client):
    user = fresh_user_id("hist")
    for n in range(4):
        push(user, data=n)
    body = page(client, user, after_seq=2, limit=2)
    assert [m["seq"] for m in body["messages"]] == [3, 4]
    assert body["next_after_seq"] is None


def test_after_seq_past_the_end_gives_an_empty_last_page(client):
    user = fresh_user_id("hist")
    push(user, data=1)
    assert page(client, user, after_seq=1) == {"messages": [], "next_after_seq": None}
    assert page(client, user, after_seq=10**12)["messages"] == []


def test_default_limit_is_100(client):
    user = fresh_user_id("hist")
    delivery.push_batch(
        [
            PushRequest(targets=(user,), event="message", data=n, sender=None)
            for n in range(101)
        ]
    )
    body = page(client, user)
    assert len(body["messages"]) == 100
    assert body["next_after_seq"] == 100
    assert [m["seq"] for m in page(client, user, after_seq=100)["messages"]] == [101]


@pytest.mark.parametrize("limit", ["1", "1000"])
def test_limit_from_1_to_1000_is_accepted(client, limit):
    user = fresh_user_id("hist")
    push(user, data=1)
    push(user, data=2)
    body = page(client, user, limit=limit)
    assert len(body["messages"]) == min(int(limit), 2)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "-1"},
        {"limit": "ten"},
        {"limit": ""},
        {"limit": "1.5"},
        {"after_seq": "-1"},
        {"after_seq": "abc"},
        {"after_seq": "1e3"},
        {"after_seq": "%EF%BC%91"},  # a full-width digit one
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_bad_limit_or_after_seq_is_400_invalid(client, params):
    user = fresh_user_id("hist")
    body = assert_error(client.get(history_url(user, **params)), 400, "invalid")
    assert set(body["detail"]) == set(params)


@pytest.mark.parametrize("user_id", ["-alice", "a" * 65, "al%20ice", "%C3%A9l%C3%A8ve"])
def test_bad_user_id_is_400_invalid(client, user_id):
    body = assert_error(client.get(history_url(user_id)), 400, "invalid")
    assert "user_id" in body["detail"]


# --- permissions (token mode) ---------------------------------------------------------


@pytest.fixture
def token_mode(settings) -> None:
    settings.BRIDGE_AUTH_MODE = "token"


@pytest.mark.usefixtures("token_mode")
def test_history_needs_an_ops_key_or_a_staff_session(client):
    user = fresh_user_id("hist")
    push(user, data="secret")
    url = history_url(user)
    operator = api_key_create(name="operator", service="ops", permissions={"ops"}).raw
    pusher = api_key_create(name="pusher", service="builds").raw

    assert_error(client.get(url), 401, "not_authenticated")
    assert_error(
        client.get(url, HTTP_AUTHORIZATION="Bearer brk_00000000_" + "A" * 43),
        401,
        "not_authenticated",
    )
    assert_error(
        client.get(url, HTTP_AUTHORIZATION=f"Bearer {pusher}"), 403, "permission_denied"
    )
    allowed = client.get(url, HTTP_AUTHORIZATION=f"Bearer {operator}")
    assert allowed.status_code == 200, allowed.content
    assert [m["data"] for m in allowed.json()["messages"]] == ["secret"]

    users = get_user_model().objects
    plain = Client(raise_request_exception=False)
    plain.force_login(users.create_user("plain", password="unused-pw-1"))
    assert_error(plain.get(url), 403, "permission_denied")
    staff = Client(raise_request_exception=False)
    staff.force_login(users.create_user("staff", password="unused-pw-1", is_staff=True))
    assert staff.get(url).status_code == 200


# --- Redis down -----------------------------------------------------------------------


@pytest.mark.usefixtures("token_mode")
def test_history_reads_keep_working_while_redis_is_stopped(client, redis_restartable):
    user = fresh_user_id("hist")
    ids = [push(user, data=n).message_id for n in range(3)]
    operator = api_key_create(name="operator", service="ops", permissions={"ops"}).raw
    redis_restartable.stop(kill=True)
    started = time.monotonic()
    response = client.get(
        history_url(user, after_seq=1), HTTP_AUTHORIZATION=f"Bearer {operator}"
    )
    assert time.monotonic() - started < 5
    assert response.status_code == 200, response.content
    assert [m["id"] for m in response.json()["messages"]] == ids[1:]
