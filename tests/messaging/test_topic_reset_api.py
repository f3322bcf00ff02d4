"""POST /api/topics/<topic>/reset (SPEC §9): the topic's kept messages are
deleted, its `seq` keeps counting, and every subscription of it ends with
`unsubscribed`, reason `reset` (the layer event; the frames themselves are in
tests/e2e/test_reset_recall.py).

Personas (token mode):
- `operator`: an API key with `ops`; a staff session may do the same.
- `manager`: a key with `topics` (membership only): may not reset.
- `pusher`: a key with `push`: may not reset.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from unittest import mock

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.test import Client

from accounts import selectors
from accounts.keys import api_key_create
from accounts.models import PublicAccount
from bridge_project.embedded_redis import EmbeddedRedis
from messaging.models import Message, StreamEntry, StreamSequence
from messaging.streams import publish
from messaging.streams.names import personal_stream, stream_group
from tests.support.topics import fresh_topic, make_namespace

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def namespaces(db, redis_server: EmbeddedRedis) -> Iterator[None]:
    make_namespace("room")
    make_namespace("ticker", subscribe="public", history_size=0)
    yield


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture
def ci_bot() -> Iterator[str]:
    PublicAccount.objects.get_or_create(handle="ci_bot")
    selectors.invalidate_cache()
    yield "ci_bot"
    selectors.invalidate_cache()


def push(client: Client, body: dict) -> dict:
    response = client.post(
        "/sse/push", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 202, response.content
    return response.json()


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == code
    return body


def reset(client: Client, topic: str, **headers: str):
    return client.post(f"/api/topics/{topic}/reset", headers=headers)


def test_reset_deletes_the_kept_messages_and_seq_keeps_counting(client):
    topic, other = fresh_topic(), fresh_topic()
    for n in range(3):
        push(client, {"topic": topic, "data": n})
    push(client, {"topic": other, "data": "stays"})

    assert ok(reset(client, topic)) == {"deleted": 3}
    assert not StreamEntry.objects.filter(stream=topic).exists()
    assert StreamSequence.objects.get(stream=topic).last_seq == 3
    assert Message.objects.filter(topic=topic).count() == 0
    assert StreamEntry.objects.filter(stream=other).count() == 1

    assert push(client, {"topic": topic, "data": "after"})["seq"] == 4
    history = ok(client.get(f"/api/topics/{topic}/messages"))
    assert [(m["seq"], m["data"]) for m in history["messages"]] == [(4, "after")]


def test_a_message_also_in_a_bots_stream_keeps_its_mention_copy(client, ci_bot):
    topic = fresh_topic()
    reply = push(client, {"topic": topic, "message": "hi @ci_bot"})
    assert ok(reset(client, topic)) == {"deleted": 1}
    kept = StreamEntry.objects.get(
        stream=personal_stream("ci_bot"), message_id=reply["id"]
    )
    assert kept.message.data == {"text": "hi @ci_bot"}


def test_reset_of_a_topic_with_nothing_kept_is_zero_and_still_ends_subscriptions(
    client,
):
    with mock.patch.object(publish, "topic_reset_blocking") as ended:
        assert ok(reset(client, fresh_topic("ticker"))) == {"deleted": 0}
        topic = fresh_topic()
        assert ok(reset(client, topic)) == {"deleted": 0}
    assert ended.call_count == 2
    ended.assert_called_with(topic)


def test_reset_publishes_one_event_to_the_topics_group_on_the_real_layer(client):
    topic = fresh_topic()

    async def listen_while_resetting() -> dict:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(stream_group(topic), channel)
        try:
            ok(await sync_to_async(reset)(client, topic))
            return await asyncio.wait_for(layer.receive(channel), 5)
        finally:
            await layer.group_discard(stream_group(topic), channel)

    event = async_to_sync(listen_while_resetting)()
    assert event == {"type": "bridge.topic_reset", "topic": topic}


def test_reset_while_redis_fails_is_still_200_and_logged(client, caplog):
    topic = fresh_topic()
    push(client, {"topic": topic, "data": 1})
    failing = mock.patch.object(
        publish,
        "publish_blocking",
        side_effect=publish.LayerUnavailable("Redis is unreachable"),
    )
    with failing, caplog.at_level("WARNING"):
        assert ok(reset(client, topic)) == {"deleted": 1}
    assert "subscriptions were not ended" in caplog.text


@pytest.mark.parametrize("topic", ["room", "user:alice", "Room:x", "room:" + "x" * 129])
def test_reset_of_a_badly_named_topic_is_400(client, topic):
    assert_error(reset(client, topic), 400, "invalid")


def test_reset_of_an_unknown_namespace_is_404(client):
    assert_error(reset(client, "nowhere:x"), 404, "not_found")


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_reset_other_than_post_is_405(client, method):
    response = getattr(client, method)("/api/topics/room:x/reset")
    assert_error(response, 405, "method_not_allowed")


def test_reset_needs_ops(client, settings):
    settings.BRIDGE_AUTH_MODE = "token"
    keys = {
        persona: api_key_create(
            name=persona, service=f"{persona}-svc", permissions={permission}
        ).raw
        for persona, permission in [
            ("operator", "ops"),
            ("manager", "topics"),
            ("pusher", "push"),
        ]
    }
    topic = fresh_topic()
    for persona in ("manager", "pusher"):
        response = reset(client, topic, Authorization=f"Bearer {keys[persona]}")
        assert_error(response, 403, "permission_denied")
    assert_error(reset(client, topic), 401, "not_authenticated")
    ok(reset(client, topic, Authorization=f"Bearer {keys['operator']}"))
    client.force_login(get_user_model().objects.create_user("boss", is_staff=True))
    ok(reset(client, topic))
