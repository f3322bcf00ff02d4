"""What a failure inside the consumer leaves behind: nothing.

A database error while filling a gap closes the connection with 1011 (an
`error` frame first, one log line, no traceback); any other exception still
ends with the registry entry, the group membership and the
`bridge_connections_open` gauge undone; a push reaching a refused handshake's
groups is ignored. In process, on the suite's real Redis.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import OperationalError
from django.test import override_settings
from prometheus_client import REGISTRY

from bridge_project.asgi import application
from messaging import presence
from messaging.streams import groups, history
from tests.support.ids import fresh_user_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

TIMEOUT = 5


def open_gauge() -> float:
    return REGISTRY.get_sample_value("bridge_connections_open") or 0.0


@pytest.fixture
async def sockets() -> AsyncIterator[list[WebsocketCommunicator]]:
    opened: list[WebsocketCommunicator] = []
    yield opened
    for communicator in opened:
        if not communicator.future.done():
            await communicator.disconnect(timeout=TIMEOUT)


async def connect(sockets: list, user: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws?user_id={user}")
    sockets.append(communicator)
    accepted, _ = await communicator.connect(timeout=TIMEOUT)
    assert accepted
    return communicator


async def deliver(user: str, seq: int) -> None:
    await get_channel_layer().group_send(
        groups.user_group(user),
        {"type": groups.DELIVER_EVENT, "seq": seq, "frame": '{"type":"message"}'},
    )


async def subscribed(user: str) -> bool:
    """Whether anything in Redis still listens to the user's group."""
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    try:
        ((_, count),) = await client.pubsub_numsub(
            f"bridge__group__{groups.user_group(user)}"
        )
    finally:
        await client.aclose()
    return count > 0


async def test_a_database_error_during_gap_fill_closes_with_1011_and_cleans_up(
    sockets, monkeypatch, caplog
):
    user = fresh_user_id("gapfail")
    gauge = open_gauge()
    ws = await connect(sockets, user)
    assert json.loads(await ws.receive_from(TIMEOUT))["type"] == "connected"
    assert open_gauge() == gauge + 1
    assert await subscribed(user)

    def failing_read(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(history, "frames_after", failing_read)
    with caplog.at_level(logging.INFO):
        await deliver(user, seq=2)  # seq 1 never arrived: fill it from the store
        error = json.loads(await ws.receive_from(TIMEOUT))
        closed = await ws.receive_output(TIMEOUT)
        await ws.disconnect(code=1011, timeout=TIMEOUT)

    assert error["type"] == "error" and error["code"] == "unavailable"
    assert closed == {"type": "websocket.close", "code": 1011}
    assert (await presence.connection_counts([user]))[user] == 0
    assert not await subscribed(user)
    assert open_gauge() == gauge
    assert any("database error on connection" in r.message for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_an_unexpected_error_still_undoes_registry_groups_and_gauge(
    sockets, monkeypatch
):
    user = fresh_user_id("crash")
    gauge = open_gauge()
    ws = await connect(sockets, user)
    assert json.loads(await ws.receive_from(TIMEOUT))["type"] == "connected"

    def broken_read(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(history, "frames_after", broken_read)
    await deliver(user, seq=2)
    with pytest.raises(RuntimeError, match="a bug"):
        await ws.receive_output(TIMEOUT)  # the application ended with the bug

    assert (await presence.connection_counts([user]))[user] == 0
    assert not await subscribed(user)
    assert open_gauge() == gauge


@override_settings(BRIDGE_MAX_CONNECTIONS_PER_USER=1)
async def test_a_push_reaching_a_refused_handshake_is_ignored(sockets):
    user = fresh_user_id("refused")
    first = await connect(sockets, user)
    assert json.loads(await first.receive_from(TIMEOUT))["type"] == "connected"
    second = await connect(sockets, user)
    refusal = json.loads(await second.receive_from(TIMEOUT))
    assert refusal["code"] == "too_many_connections"
    assert await second.receive_output(TIMEOUT) == {
        "type": "websocket.close",
        "code": 4429,
    }

    # The refused socket had joined the user's group before the refusal.
    await deliver(user, seq=1)
    assert json.loads(await first.receive_from(TIMEOUT))["type"] == "message"
    assert await second.receive_nothing(timeout=0.5)
    await second.disconnect(code=4429, timeout=TIMEOUT)
    assert (await presence.connection_counts([user]))[user] == 1
