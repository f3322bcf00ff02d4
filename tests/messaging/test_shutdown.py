"""A process leaving (SPEC §11), in process: messaging.realtime.shutdown.Departure sends
each connection away with 1001 `going_away` and removes the process's presence.

The server side (stop listening, in-flight requests, the grace) is tested with
real daphne processes in tests/e2e/test_graceful_shutdown.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import pytest
from channels.testing import WebsocketCommunicator

from bridge_project.asgi import application
from messaging import presence
from messaging.instance import INSTANCE_NAME
from messaging.realtime import instance_registry, shutdown
from tests.support.ids import fresh_user_id

pytestmark = pytest.mark.timeout(30)
db = pytest.mark.django_db(transaction=True)

TIMEOUT = 5


@pytest.fixture
async def sockets() -> AsyncIterator[list[WebsocketCommunicator]]:
    opened: list[WebsocketCommunicator] = []
    yield opened
    for communicator in opened:
        if not communicator.future.done():
            await communicator.disconnect(timeout=TIMEOUT)


async def connect(sockets: list[WebsocketCommunicator], user_id: str):
    communicator = WebsocketCommunicator(application, f"/ws?user_id={user_id}")
    sockets.append(communicator)
    accepted, _ = await communicator.connect(timeout=TIMEOUT)
    assert accepted
    connected = json.loads(await communicator.receive_from(timeout=TIMEOUT))
    assert connected["type"] == "connected", connected
    return communicator


async def assert_sent_away(communicator: WebsocketCommunicator, grace: float) -> None:
    """`error` going_away with a hint within the spread, then close 1001."""
    frame = json.loads(await communicator.receive_from(timeout=TIMEOUT))
    assert frame["type"] == "error" and frame["code"] == "going_away", frame
    assert isinstance(frame["retry_after_ms"], int)
    spread = min(shutdown.RECONNECT_SPREAD_SECONDS, grace)
    assert 0 <= frame["retry_after_ms"] <= spread * 1000
    closing = await communicator.receive_output(timeout=TIMEOUT)
    assert closing == {"type": "websocket.close", "code": 1001}


async def disconnected_by_the_server(communicator: WebsocketCommunicator) -> None:
    """What daphne does once the client has answered the close."""
    await communicator.send_input({"type": "websocket.disconnect", "code": 1001})
    await communicator.wait(timeout=TIMEOUT)


@db
async def test_every_connection_is_sent_away_and_leaves_presence(sockets):
    users = [fresh_user_id("leaving") for _ in range(2)]
    communicators = [await connect(sockets, user) for user in users]
    assert await presence.connection_counts(users) == dict.fromkeys(users, 1)

    departure = shutdown.Departure(grace=10)
    assert departure.send_away() == 2
    for communicator in communicators:
        await assert_sent_away(communicator, grace=10)
        await disconnected_by_the_server(communicator)

    assert departure.connections_left == 0
    assert await presence.connection_counts(users) == dict.fromkeys(users, 0)
    assert departure.send_away() == 0, "a connection is told once"


@db
async def test_a_handshake_finishing_during_the_drain_is_sent_away_too(sockets):
    departure = shutdown.Departure(grace=2)
    communicator = await connect(sockets, fresh_user_id("late"))
    assert departure.send_away() == 1
    await assert_sent_away(communicator, grace=2)
    await disconnected_by_the_server(communicator)


@db
async def test_forget_removes_the_instance_and_connections_still_open(sockets):
    user = fresh_user_id("stuck")
    await connect(sockets, user)  # never told, never closes: stuck
    await instance_registry.register_this_instance()
    assert INSTANCE_NAME in {i["instance"] for i in await presence.instances()}

    departure = shutdown.Departure(grace=10)
    await departure.forget(timeout=TIMEOUT)

    assert INSTANCE_NAME not in {i["instance"] for i in await presence.instances()}
    assert (await presence.connection_counts([user]))[user] == 0
    # Registration is stopped: nothing re-registers the instance afterwards.
    instance_registry.ensure_registered()
    await instance_registry.register_this_instance()
    assert INSTANCE_NAME not in {i["instance"] for i in await presence.instances()}


def test_reconnect_hints_are_spread_over_a_few_seconds_within_the_grace():
    rng = random.Random(11)
    hints = [shutdown.retry_after_ms(10, rng) for _ in range(1000)]
    assert min(hints) >= 0 and max(hints) <= 5000
    assert max(hints) - min(hints) > 4000, "not spread"
    short = [shutdown.retry_after_ms(2, rng) for _ in range(1000)]
    assert max(short) <= 2000
