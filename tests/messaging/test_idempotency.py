"""Idempotent pushes (SPEC §5): a repeated idempotency_key returns the first
reply with `Idempotent-Replayed: true`, and nothing is stored or sent again.

In process: pushes through the HTTP API, a live socket through
WebsocketCommunicator, the channel layer on the suite's real Redis. Concurrent
duplicates against two real processes are in tests/e2e/test_idempotency.py.

Personas in token mode (each an API key with `push`):
- `builds`: one upstream service.
- `deploys`: another upstream service, which happens to pick the same keys.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient, Client, override_settings
from django.utils import timezone

from accounts.keys import api_key_create
from bridge_project.asgi import application
from messaging.models import IdempotencyRecord, Message, StreamEntry
from messaging.streams.groups import user_group
from messaging.streams.names import personal_stream
from tests.support.ids import fresh_user_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

PUSH, BATCH = "/sse/push", "/sse/push/batch"
TIMEOUT = 5
REPLAYED = "Idempotent-Replayed"


@pytest.fixture
async def listen() -> AsyncIterator:
    """Open a live socket for a user; every one is disconnected at teardown."""
    opened: list[WebsocketCommunicator] = []

    async def open_socket(user_id: str) -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(application, f"/ws?user_id={user_id}")
        opened.append(communicator)
        accepted, _ = await communicator.connect(timeout=TIMEOUT)
        assert accepted
        connected = json.loads(await communicator.receive_from(timeout=TIMEOUT))
        assert connected["type"] == "connected", connected
        return communicator

    yield open_socket
    for communicator in opened:
        if not communicator.future.done():
            await communicator.disconnect(timeout=TIMEOUT)


async def apost(path: str, body: Any, **extra: Any):
    return await AsyncClient(raise_request_exception=False).post(
        path, data=json.dumps(body), content_type="application/json", **extra
    )


def post(path: str, body: Any, key: str | None = None):
    extra = {} if key is None else {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    return Client(raise_request_exception=False).post(
        path, data=json.dumps(body), content_type="application/json", **extra
    )


async def frames_of(communicator: WebsocketCommunicator, count: int) -> list[dict]:
    return [
        json.loads(await communicator.receive_from(timeout=TIMEOUT))
        for _ in range(count)
    ]


async def stored_for(user_id: str) -> int:
    return await StreamEntry.objects.filter(stream=personal_stream(user_id)).acount()


# --- one push -----------------------------------------------------------------------


async def test_repeated_key_replays_the_first_reply_and_sends_nothing_again(listen):
    user = fresh_user_id("idem")
    socket = await listen(user)
    body = {"user_id": user, "message": "build #42 passed", "idempotency_key": "b-42"}

    first = await apost(PUSH, body)
    assert first.status_code == 202, first.content
    assert REPLAYED not in first.headers
    (frame,) = await frames_of(socket, 1)
    assert (frame["id"], frame["seq"]) == (first.json()["id"], 1)

    again = await apost(PUSH, body)
    assert again.status_code == 202, again.content
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    assert await stored_for(user) == 1
    assert await socket.receive_nothing(timeout=0.5)


async def test_repeated_key_with_a_different_body_still_replays_and_sends_nothing(
    listen,
):
    user = fresh_user_id("idem")
    socket = await listen(user)
    first = await apost(PUSH, {"user_id": user, "data": 1, "idempotency_key": "k"})
    assert first.status_code == 202, first.content
    await frames_of(socket, 1)

    retry = await apost(PUSH, {"user_id": user, "data": 2, "idempotency_key": "k"})
    assert retry.status_code == 202, retry.content
    assert retry.headers[REPLAYED] == "true"
    assert retry.json() == first.json()
    assert await socket.receive_nothing(timeout=0.5)
    stored = await Message.objects.aget(id=first.json()["id"])
    assert stored.data == 1
    assert await stored_for(user) == 1


async def test_pushes_with_other_keys_or_no_key_are_not_replayed(listen):
    user = fresh_user_id("idem")
    socket = await listen(user)
    bodies = [
        {"user_id": user, "data": 1, "idempotency_key": "one"},
        {"user_id": user, "data": 2, "idempotency_key": "two"},
        {"user_id": user, "data": 3},
        {"user_id": user, "data": 3},
    ]
    replies = [await apost(PUSH, body) for body in bodies]
    assert [r.status_code for r in replies] == [202] * 4
    assert not any(REPLAYED in r.headers for r in replies)
    assert len({r.json()["id"] for r in replies}) == 4
    assert [f["seq"] for f in await frames_of(socket, 4)] == [1, 2, 3, 4]


@pytest.mark.parametrize(("length", "status"), [(128, 202), (129, 400)])
async def test_idempotency_key_is_at_most_128_characters(length, status):
    user = fresh_user_id("idem")
    reply = await apost(
        PUSH, {"user_id": user, "data": 1, "idempotency_key": "k" * length}
    )
    assert reply.status_code == status, reply.content
    if status == 400:
        assert reply.json()["error"] == "invalid"
        assert "idempotency_key" in reply.json()["detail"]
        assert await stored_for(user) == 0


def test_key_older_than_24_hours_is_not_replayed():
    user = fresh_user_id("idem")
    body = {"user_id": user, "data": 1, "idempotency_key": "nightly"}
    first = post(PUSH, body)
    assert first.status_code == 202, first.content
    IdempotencyRecord.objects.filter(key="nightly").update(
        created_at=timezone.now() - timedelta(hours=24, minutes=1)
    )
    later = post(PUSH, body)
    assert later.status_code == 202, later.content
    assert REPLAYED not in later.headers
    assert later.json()["id"] != first.json()["id"]
    assert later.json()["recipients"][0]["seq"] == 2
    # ...and the new push is what a retry now replays.
    retry = post(PUSH, body)
    assert retry.headers[REPLAYED] == "true"
    assert retry.json()["id"] == later.json()["id"]


def test_a_push_refused_with_503_does_not_use_up_its_key(redis_restartable):
    user = fresh_user_id("idem")
    body = {"user_id": user, "data": 1, "idempotency_key": "retry-me"}
    redis_restartable.stop(kill=True)
    refused = post(PUSH, body)
    assert refused.status_code == 503, refused.content
    redis_restartable.start()
    retried = post(PUSH, body)
    assert retried.status_code == 202, retried.content
    assert REPLAYED not in retried.headers
    assert retried.json()["recipients"][0]["seq"] == 1
    assert StreamEntry.objects.filter(stream=personal_stream(user)).count() == 1


async def test_retry_arriving_while_the_original_is_being_sent_gets_the_same_reply(
    listen,
):
    # SPEC §5: a repeat "returns the original reply". A caller that retries
    # while its first attempt is still in flight must not be told the user was
    # offline when the original reply says a connection got the message.
    user = fresh_user_id("idem")
    socket = await listen(user)
    body = {"user_id": user, "message": "deployed", "idempotency_key": "deploy-43"}
    layer = get_channel_layer()
    send_to_groups = layer.group_send_many
    retries = []

    async def retry_while_sending(messages) -> None:
        messages = list(messages)
        # The original is stored and committed, and is being sent right now.
        if any(group == user_group(user) for group, _ in messages) and not retries:
            retries.append(await apost(PUSH, body))
        await send_to_groups(messages)

    layer.group_send_many = retry_while_sending
    original = await apost(PUSH, body)
    assert original.status_code == 202, original.content
    assert original.json()["recipients"][0]["connections"] == 1
    (retry,) = retries
    assert retry.status_code == 202, retry.content
    assert retry.headers[REPLAYED] == "true"
    assert retry.json() == original.json()
    assert len(await frames_of(socket, 1)) == 1
    assert await socket.receive_nothing(timeout=0.3)


# --- batches ------------------------------------------------------------------------


async def test_repeated_batch_replays_every_result_and_sends_nothing(listen):
    user = fresh_user_id("idem")
    other = fresh_user_id("idem")
    socket = await listen(user)
    batch = {
        "messages": [
            {"user_id": user, "data": 1, "idempotency_key": "a"},
            {"user_ids": [user, other], "data": 2, "idempotency_key": "b"},
            {"user_id": user, "data": 3, "idempotency_key": "c"},
        ]
    }
    first = await apost(BATCH, batch)
    assert first.status_code == 202, first.content
    assert REPLAYED not in first.headers
    assert [f["seq"] for f in await frames_of(socket, 3)] == [1, 2, 3]

    again = await apost(BATCH, batch)
    assert again.status_code == 202, again.content
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    assert await socket.receive_nothing(timeout=0.5)
    assert await stored_for(user) == 3
    assert await stored_for(other) == 1
    assert (
        await Message.objects.filter(
            stream_entries__stream=personal_stream(user)
        ).acount()
        == 3
    )


async def test_batch_mixing_replayed_and_new_items_sends_only_the_new_ones(listen):
    user = fresh_user_id("idem")
    socket = await listen(user)
    earlier = await apost(PUSH, {"user_id": user, "data": "x", "idempotency_key": "x"})
    assert earlier.status_code == 202, earlier.content
    await frames_of(socket, 1)

    batch = {
        "messages": [
            {"user_id": user, "data": "x again", "idempotency_key": "x"},
            {"user_id": user, "data": "y", "idempotency_key": "y"},
            {"user_id": user, "data": "z"},
        ]
    }
    reply = await apost(BATCH, batch)
    assert reply.status_code == 202, reply.content
    assert reply.headers[REPLAYED] == "true"
    results = reply.json()["results"]
    assert results[0] == earlier.json()
    assert [r["recipients"][0]["seq"] for r in results] == [1, 2, 3]
    received = await frames_of(socket, 2)
    assert [(f["seq"], f["data"]) for f in received] == [(2, "y"), (3, "z")]
    assert [f["id"] for f in received] == [results[1]["id"], results[2]["id"]]
    assert await socket.receive_nothing(timeout=0.5)


async def test_duplicate_keys_inside_one_batch_are_400_at_the_repeating_item(listen):
    user = fresh_user_id("idem")
    socket = await listen(user)
    batch = {
        "messages": [
            {"user_id": user, "data": 0, "idempotency_key": "same"},
            {"user_id": user, "data": 1, "idempotency_key": "other"},
            {"user_id": user, "data": 2, "idempotency_key": "same"},
        ]
    }
    reply = await apost(BATCH, batch)
    assert reply.status_code == 400, reply.content
    body = reply.json()
    assert body["error"] == "invalid"
    assert set(body["detail"]["messages"]) == {"2"}
    assert "idempotency_key" in body["detail"]["messages"]["2"]
    assert await socket.receive_nothing(timeout=0.5)
    assert await stored_for(user) == 0
    # Nothing was recorded either: the key is still free.
    fresh = await apost(PUSH, {"user_id": user, "data": 3, "idempotency_key": "same"})
    assert fresh.status_code == 202, fresh.content
    assert REPLAYED not in fresh.headers


# --- scopes (token mode) ------------------------------------------------------------


@override_settings(BRIDGE_AUTH_MODE="token")
def test_two_api_keys_may_use_the_same_key_without_colliding():
    builds = api_key_create(name="builds", service="builds").raw
    deploys = api_key_create(name="deploys", service="deploys").raw
    user = fresh_user_id("idem")
    body = {"user_id": user, "message": "done", "idempotency_key": "job-7"}

    from_builds = post(PUSH, body, builds)
    from_deploys = post(PUSH, body, deploys)
    assert (from_builds.status_code, from_deploys.status_code) == (202, 202)
    assert REPLAYED not in from_builds.headers
    assert REPLAYED not in from_deploys.headers
    assert from_builds.json()["id"] != from_deploys.json()["id"]
    assert [r.json()["recipients"][0]["seq"] for r in (from_builds, from_deploys)] == [
        1,
        2,
    ]

    # Each caller's retry replays its own first reply.
    for key, original in ((builds, from_builds), (deploys, from_deploys)):
        retry = post(PUSH, body, key)
        assert retry.headers[REPLAYED] == "true"
        assert retry.json() == original.json()
    batch_retry = post(BATCH, {"messages": [body]}, deploys)
    assert batch_retry.headers[REPLAYED] == "true"
    assert batch_retry.json()["results"] == [from_deploys.json()]
    assert StreamEntry.objects.filter(stream=personal_stream(user)).count() == 2
