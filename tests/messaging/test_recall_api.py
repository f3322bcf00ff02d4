"""DELETE /api/messages/<id> (SPEC §9 recall): the message becomes a tombstone
(`data: null`, `"recalled": true`) in history and resume, and each stream it is
in gets a live-only `recall` frame (the frames reaching sockets are in
tests/e2e/test_reset_recall.py).

Personas (token mode), each an API key:
- `pusher`: a service key with `push` and `sender`: may recall what it pushed.
- `other`: another service key with `push`: may not recall `pusher`'s messages.
- `bot`: a key of the public account `ci_bot`: may recall what ci_bot sent,
  whichever key pushed it.
- `operator`: `ops`: may recall anything; so may a staff session.
"""

from __future__ import annotations

import asyncio
import json
import uuid
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
from messaging.models import Message
from messaging.streams import history, publish
from messaging.streams.names import personal_stream, stream_group
from tests.support.ids import fresh_user_id
from tests.support.topics import fresh_topic, make_namespace

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def setup(db, redis_server: EmbeddedRedis, settings) -> Iterator[None]:
    make_namespace("room")
    PublicAccount.objects.get_or_create(handle="ci_bot")
    selectors.invalidate_cache()
    settings.BRIDGE_AUTH_MODE = "token"
    yield
    selectors.invalidate_cache()


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture
def keys() -> dict[str, str]:
    bot = PublicAccount.objects.get(handle="ci_bot")
    return {
        "pusher": api_key_create(
            name="pusher", service="ci", permissions={"push", "sender"}
        ).raw,
        "other": api_key_create(name="other", service="crm", permissions={"push"}).raw,
        "bot": api_key_create(name="bot", account=bot, permissions={"push"}).raw,
        "operator": api_key_create(name="ops", service="ops", permissions={"ops"}).raw,
    }


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def push(client: Client, key: str, body: dict) -> dict:
    response = client.post(
        "/sse/push",
        data=json.dumps(body),
        content_type="application/json",
        headers=bearer(key),
    )
    assert response.status_code == 202, response.content
    return response.json()


def recall(client: Client, message_id: str, key: str | None = None):
    headers = bearer(key) if key else {}
    return client.delete(f"/api/messages/{message_id}", headers=headers)


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == code
    return body


def test_the_pushing_key_recalls_and_history_keeps_a_tombstone(client, keys):
    alice = fresh_user_id("recall")
    kept = push(client, keys["pusher"], {"user_id": alice, "data": {"n": 1}})
    gone = push(client, keys["pusher"], {"user_id": alice, "message": "oops"})
    assert ok(recall(client, gone["id"], keys["pusher"])) == {
        "id": gone["id"],
        "recalled": True,
    }
    response = client.get(
        f"/api/users/{alice}/messages", headers=bearer(keys["operator"])
    )
    first, second = ok(response)["messages"]
    assert first["id"] == kept["id"] and "recalled" not in first
    assert first["data"] == {"n": 1}
    assert (second["id"], second["seq"], second["data"], second["recalled"]) == (
        gone["id"],
        2,
        None,
        True,
    )
    # Resume (and gap fill) read the same frames.
    replayed = json.loads(
        history.frames_after(personal_stream(alice), after_seq=1)[0].text
    )
    assert (replayed["type"], replayed["data"], replayed["recalled"]) == (
        "message",
        None,
        True,
    )


def test_the_push_records_which_key_pushed_it(client, keys):
    reply = push(client, keys["other"], {"user_id": "alice", "data": 1})
    assert Message.objects.get(pk=reply["id"]).pushed_by_key is not None


def test_the_bot_that_sent_it_may_recall_it_whoever_pushed(client, keys):
    reply = push(
        client, keys["pusher"], {"user_id": "alice", "data": 1, "sender": "ci_bot"}
    )
    ok(recall(client, reply["id"], keys["bot"]))


def test_ops_and_a_staff_session_may_recall_anything(client, keys):
    first = push(client, keys["other"], {"user_id": "alice", "data": 1})
    second = push(client, keys["other"], {"user_id": "alice", "data": 2})
    ok(recall(client, first["id"], keys["operator"]))
    client.force_login(get_user_model().objects.create_user("boss", is_staff=True))
    ok(recall(client, second["id"]))


def test_open_mode_may_recall_anything(client, settings):
    settings.BRIDGE_AUTH_MODE = "open"
    reply = client.post(
        "/sse/push",
        data=json.dumps({"user_id": "alice", "data": 1}),
        content_type="application/json",
    ).json()
    ok(recall(client, reply["id"]))


def test_someone_elses_message_is_403_and_stays(client, keys):
    reply = push(client, keys["pusher"], {"user_id": "alice", "data": 1})
    for persona in ("other", "bot"):
        assert_error(
            recall(client, reply["id"], keys[persona]), 403, "permission_denied"
        )
    assert Message.objects.get(pk=reply["id"]).recalled_at is None


def test_a_non_staff_session_is_403(client, keys):
    reply = push(client, keys["pusher"], {"user_id": "alice", "data": 1})
    client.force_login(get_user_model().objects.create_user("someone"))
    assert_error(recall(client, reply["id"]), 403, "permission_denied")


def test_recall_without_credentials_is_401(client, keys):
    reply = push(client, keys["pusher"], {"user_id": "alice", "data": 1})
    assert_error(recall(client, reply["id"]), 401, "not_authenticated")
    assert_error(recall(client, reply["id"], "brk_nonsense"), 401, "not_authenticated")


@pytest.mark.parametrize("message_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
def test_an_unknown_id_is_404(client, keys, message_id):
    assert_error(recall(client, message_id, keys["operator"]), 404, "not_found")


def test_a_live_only_message_was_never_stored_so_is_404(client, keys):
    reply = push(
        client, keys["pusher"], {"user_id": "alice", "data": 1, "persist": False}
    )
    assert_error(recall(client, reply["id"], keys["pusher"]), 404, "not_found")


@pytest.mark.parametrize("method", ["get", "post", "put"])
def test_other_methods_are_405(client, keys, method):
    response = getattr(client, method)(
        f"/api/messages/{uuid.uuid4()}", headers=bearer(keys["operator"])
    )
    assert_error(response, 405, "method_not_allowed")


def test_recalling_again_answers_the_same(client, keys):
    reply = push(client, keys["pusher"], {"user_id": "alice", "data": 1})
    first = ok(recall(client, reply["id"], keys["pusher"]))
    assert ok(recall(client, reply["id"], keys["pusher"])) == first


def listen_while_recalling(client: Client, streams: list[str], recall_call) -> list:
    """The layer events each stream's group gets while `recall_call` runs."""

    async def listen() -> list:
        layer = get_channel_layer()
        channels = []
        for stream in streams:
            channel = await layer.new_channel()
            await layer.group_add(stream_group(stream), channel)
            channels.append((stream, channel))
        try:
            ok(await sync_to_async(recall_call)())
            return [
                await asyncio.wait_for(layer.receive(channel), 5)
                for _, channel in channels
            ]
        finally:
            for stream, channel in channels:
                await layer.group_discard(stream_group(stream), channel)

    return async_to_sync(listen)()


def test_each_stream_the_message_is_in_gets_a_live_only_recall(client, keys):
    topic = fresh_topic()
    reply = push(client, keys["pusher"], {"topic": topic, "message": "hi @ci_bot"})
    streams = [topic, personal_stream("ci_bot")]
    events = listen_while_recalling(
        client, streams, lambda: recall(client, reply["id"], keys["pusher"])
    )
    for stream, event in zip(streams, events, strict=True):
        assert (event["type"], event["stream"], event["seq"]) == (
            "bridge.deliver",
            stream,
            None,
        )
        assert json.loads(event["frame"]) == {
            "type": "recall",
            "id": reply["id"],
            "topic": topic,
        }


def test_a_personal_recall_frame_has_no_topic(client, keys):
    alice = fresh_user_id("recall")
    reply = push(client, keys["pusher"], {"user_id": alice, "data": 1})
    (event,) = listen_while_recalling(
        client,
        [personal_stream(alice)],
        lambda: recall(client, reply["id"], keys["pusher"]),
    )
    assert json.loads(event["frame"]) == {"type": "recall", "id": reply["id"]}


def test_recall_while_redis_fails_is_still_200_and_logged(client, keys, caplog):
    reply = push(client, keys["pusher"], {"user_id": "alice", "data": 1})
    failing = mock.patch.object(
        publish,
        "publish_blocking",
        side_effect=publish.LayerUnavailable("Redis is unreachable"),
    )
    with failing, caplog.at_level("WARNING"):
        ok(recall(client, reply["id"], keys["pusher"]))
    assert Message.objects.get(pk=reply["id"]).recalled_at is not None
    assert "live connections were not told" in caplog.text
