"""/ws/monitor, the admin's live page socket (issue 17): staff sessions only,
then `monitor` frames saying who connected and disconnected, in process
against the suite's Redis."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from bridge_project.asgi import application
from messaging.monitoring import MonitorFeed, _changes
from tests.messaging.test_consumer import connect, open_ws  # noqa: F401

TIMEOUT = 5


def session_cookie(*, staff: bool) -> bytes:
    user = get_user_model().objects.create_user(
        username=f"op{get_user_model().objects.count()}", password="x", is_staff=staff
    )
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def monitor(cookie: bytes | None = None) -> WebsocketCommunicator:
    headers = [(b"host", b"testserver")]
    if cookie is not None:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, "/ws/monitor", headers=headers)
    accepted, _ = await communicator.connect(timeout=TIMEOUT)
    assert accepted
    return communicator


async def refused_with(communicator: WebsocketCommunicator) -> tuple[str, int]:
    error = json.loads(await communicator.receive_from(timeout=TIMEOUT))
    closed = await communicator.receive_output(timeout=TIMEOUT)
    assert closed["type"] == "websocket.close"
    return error["code"], closed["code"]


async def next_monitor(communicator: WebsocketCommunicator, changed: str) -> dict:
    """The next monitor frame listing a change of `changed`."""
    for _ in range(40):
        frame = json.loads(await communicator.receive_from(timeout=TIMEOUT))
        assert frame["type"] == "monitor", frame
        if any(c["user_id"] == changed for c in frame["changes"]):
            return frame
    raise AssertionError(f"no change of {changed}")


@pytest.mark.django_db(transaction=True)
async def test_without_a_session_the_monitor_is_4401():
    assert await refused_with(await monitor()) == ("unauthenticated", 4401)


@pytest.mark.django_db(transaction=True)
async def test_a_user_who_is_not_staff_gets_4403():
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(session_cookie)(staff=False)
    assert await refused_with(await monitor(cookie)) == ("forbidden", 4403)


@pytest.mark.django_db(transaction=True)
async def test_a_foreign_origin_gets_4403():
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(session_cookie)(staff=True)
    communicator = WebsocketCommunicator(
        application,
        "/ws/monitor",
        headers=[
            (b"host", b"testserver"),
            (b"cookie", cookie),
            (b"origin", b"https://evil.example"),
        ],
    )
    assert (await communicator.connect(timeout=TIMEOUT))[0]
    assert await refused_with(communicator) == ("forbidden", 4403)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_staff_see_connections_come_and_go(open_ws):  # noqa: F811
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(session_cookie)(staff=True)
    watcher = await monitor(cookie)
    first = json.loads(await watcher.receive_from(timeout=TIMEOUT))
    assert first["type"] == "monitor"
    assert {"stats", "users", "online_users", "changes", "pushes_per_second"} <= set(
        first
    )

    alice, _ = await connect(open_ws, "user_id=mon-alice")
    frame = await next_monitor(watcher, "mon-alice")
    assert {"event": "connected", "user_id": "mon-alice", "connections": 1} in frame[
        "changes"
    ]
    assert {"user_id": "mon-alice", "connections": 1} in frame["users"]

    await alice.disconnect()
    frame = await next_monitor(watcher, "mon-alice")
    assert {
        "event": "disconnected",
        "user_id": "mon-alice",
        "connections": 0,
    } in frame["changes"]
    await watcher.disconnect()


def test_changes_name_each_user_whose_count_moved():
    assert _changes(None, {"a": 1}) == []
    assert _changes({"a": 1, "b": 2}, {"b": 1, "c": 1}) == [
        {"event": "disconnected", "user_id": "a", "connections": 0},
        {"event": "disconnected", "user_id": "b", "connections": 1},
        {"event": "connected", "user_id": "c", "connections": 1},
    ]


async def test_the_push_rate_is_per_second_between_looks(monkeypatch):
    from messaging.api import operations

    now = [100.0]
    pushed = [10]

    async def stats() -> dict:
        return {"messages_pushed": pushed[0]}

    async def online(**_) -> dict:
        return {"users": [], "count": 0}

    monkeypatch.setattr(operations, "cluster_stats", stats)
    monkeypatch.setattr(operations, "online_users_page", online)
    feed = MonitorFeed(clock=lambda: now[0])
    assert (await feed.look())["pushes_per_second"] == 0.0
    now[0], pushed[0] = 102.0, 50
    assert (await feed.look())["pushes_per_second"] == 20.0
    now[0] += 1  # nothing changed, keep-alive not due
    assert await feed.look() is None
    now[0] += 5
    assert (await feed.look())["pushes_per_second"] == 0.0
