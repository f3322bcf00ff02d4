"""WebSocket rate limits and credential checks, in process (SPEC §2, §11):
handshakes per user and per address (4429 `rate_limited` with
`retry_after_ms`), `message` frames per user across reconnects, ping/pong/ack
floods, forged credentials refused without a query, and the WebSocket side's
database work on a pool of its own."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db.backends import utils as db_utils
from django.test import Client

from accounts import selectors
from accounts.models import PublicAccount
from bridge_project.asgi import application
from messaging.streams import delivery
from messaging.streams.delivery import PushRequest
from tests.support.ids import fresh_user_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

TIMEOUT = 5
Opener = Callable[..., Awaitable[WebsocketCommunicator]]


@pytest.fixture
async def open_ws() -> AsyncIterator[Opener]:
    """Open sockets on /ws; every one is disconnected at teardown."""
    opened: list[WebsocketCommunicator] = []

    async def open_socket(
        query: str,
        *,
        address: str = "192.0.2.10",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(
            application, f"/ws?{query}", headers=headers or []
        )
        communicator.scope["client"] = (address, 40000)
        opened.append(communicator)
        accepted, _ = await communicator.connect(timeout=TIMEOUT)
        assert accepted, "a handshake is always accepted, then closed if refused"
        return communicator

    yield open_socket
    for communicator in opened:
        if not communicator.future.done():
            await communicator.disconnect(timeout=TIMEOUT)


@pytest.fixture
async def ci_bot() -> AsyncIterator[str]:
    await PublicAccount.objects.aget_or_create(handle="ci_bot")
    selectors.invalidate_cache()
    yield "ci_bot"
    selectors.invalidate_cache()


async def receive(communicator: WebsocketCommunicator) -> dict[str, Any]:
    return json.loads(await communicator.receive_from(timeout=TIMEOUT))


async def send(communicator: WebsocketCommunicator, frame: dict) -> None:
    await communicator.send_to(text_data=json.dumps(frame))


async def close_code(communicator: WebsocketCommunicator) -> int:
    output = await communicator.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close", output
    return output.get("code", 1000)


async def connected(open_ws: Opener, query: str, **kwargs) -> WebsocketCommunicator:
    communicator = await open_ws(query, **kwargs)
    frame = await receive(communicator)
    assert frame["type"] == "connected", frame
    return communicator


async def refused(open_ws: Opener, query: str, **kwargs) -> tuple[dict, int]:
    """The error frame and close code of a refused handshake."""
    communicator = await open_ws(query, **kwargs)
    return await receive(communicator), await close_code(communicator)


def assert_rate_limited(error: dict, code: int) -> None:
    assert (error["type"], error["code"], code) == ("error", "rate_limited", 4429)
    assert isinstance(error["retry_after_ms"], int)
    assert 1 <= error["retry_after_ms"] <= 60_000


# --- handshakes per user and per address ------------------------------------------


async def test_handshake_over_the_per_user_limit_is_refused_with_4429(
    open_ws, settings
):
    settings.BRIDGE_HANDSHAKES_PER_MINUTE_PER_USER = 2
    user = fresh_user_id()
    for n in range(2):
        socket = await connected(open_ws, f"user_id={user}", address=f"192.0.2.{n}")
        await socket.disconnect(timeout=TIMEOUT)
    assert_rate_limited(*await refused(open_ws, f"user_id={user}", address="192.0.2.9"))
    # Another user is not held back.
    await connected(open_ws, f"user_id={fresh_user_id()}")


async def test_handshake_over_the_per_address_limit_is_refused_with_4429(
    open_ws, settings
):
    settings.BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS = 2
    for _ in range(2):
        socket = await connected(open_ws, f"user_id={fresh_user_id()}")
        await socket.disconnect(timeout=TIMEOUT)
    assert_rate_limited(*await refused(open_ws, f"user_id={fresh_user_id()}"))
    await connected(open_ws, f"user_id={fresh_user_id()}", address="192.0.2.77")


async def test_the_address_is_counted_before_credentials_are_checked(open_ws, settings):
    settings.BRIDGE_AUTH_MODE = "token"
    settings.BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS = 2
    for _ in range(2):
        error, code = await refused(open_ws, "token=forged.token")
        assert (error["code"], code) == ("unauthenticated", 4401)
    assert_rate_limited(*await refused(open_ws, "token=forged.token"))


async def test_the_address_behind_a_proxy_is_taken_from_x_forwarded_for(
    open_ws, settings
):
    settings.BRIDGE_NUM_PROXIES = 1
    settings.BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS = 1
    proxy = "10.0.0.1"

    def forwarded(client: str) -> dict:
        return {"address": proxy, "headers": [(b"x-forwarded-for", client.encode())]}

    await connected(open_ws, f"user_id={fresh_user_id()}", **forwarded("198.51.100.1"))
    # Another client behind the same proxy has its own count ...
    await connected(open_ws, f"user_id={fresh_user_id()}", **forwarded("198.51.100.2"))
    # ... and a forged hop in front of the proxy's does not buy a fresh one.
    assert_rate_limited(
        *await refused(
            open_ws,
            f"user_id={fresh_user_id()}",
            **forwarded("203.0.113.9, 198.51.100.1"),
        )
    )


# --- client frames -------------------------------------------------------------------


async def test_a_reconnected_user_keeps_their_message_count(open_ws, settings, ci_bot):
    settings.BRIDGE_CLIENT_MESSAGES_PER_MINUTE = 2
    user = fresh_user_id()
    first = await connected(open_ws, f"user_id={user}")
    for n in range(2):
        await send(first, {"type": "message", "text": "@ci_bot hi", "ref": f"{n}"})
        assert (await receive(first))["type"] == "ack"
    await first.disconnect(timeout=TIMEOUT)
    second = await connected(open_ws, f"user_id={user}")
    await send(second, {"type": "message", "text": "@ci_bot hi", "ref": "2"})
    error = await receive(second)
    assert (error["type"], error["code"], error["ref"]) == (
        "error",
        "rate_limited",
        "2",
    )
    assert 1 <= error["retry_after_ms"] <= 60_000


@pytest.mark.parametrize(
    ("frame", "answer"),
    [
        ({"type": "ping"}, "pong"),
        ({"type": "ack", "seq": 0}, None),
        # SPEC §10: each refresh costs a signature check (refused here: error).
        ({"type": "refresh", "token": "not-a-token"}, "error"),
    ],
    ids=["ping", "ack", "refresh"],
)
async def test_a_flood_of_ping_ack_or_refresh_frames_is_rate_limited(
    open_ws, settings, frame, answer
):
    settings.BRIDGE_CLIENT_CONTROL_FRAMES_PER_MINUTE = 3
    socket = await connected(open_ws, f"user_id={fresh_user_id()}")
    for _ in range(3):
        await send(socket, frame)
        if answer is not None:
            assert (await receive(socket))["type"] == answer
    await send(socket, frame)
    error = await receive(socket)
    assert (error["type"], error["code"]) == ("error", "rate_limited")
    assert 1 <= error["retry_after_ms"] <= 60_000


async def test_a_flood_of_unsubscribe_frames_is_rate_limited_naming_the_topic(
    open_ws, settings
):
    # Unsubscribing from a topic not held is answered, and costs Redis work.
    settings.BRIDGE_CLIENT_CONTROL_FRAMES_PER_MINUTE = 3
    socket = await connected(open_ws, f"user_id={fresh_user_id()}")
    frame = {"type": "unsubscribe", "topic": "room:1", "ref": "u"}
    for _ in range(3):
        await send(socket, frame)
        assert (await receive(socket))["type"] == "unsubscribed"
    await send(socket, frame)
    error = await receive(socket)
    assert (error["code"], error["ref"], error["topic"]) == (
        "rate_limited",
        "u",
        "room:1",
    )


async def test_a_ping_flood_closes_with_4400_like_other_refused_frames(
    open_ws, settings
):
    settings.BRIDGE_CLIENT_CONTROL_FRAMES_PER_MINUTE = 1
    socket = await connected(open_ws, f"user_id={fresh_user_id()}")
    await send(socket, {"type": "ping"})
    assert (await receive(socket))["type"] == "pong"
    for _ in range(19):
        await send(socket, {"type": "ping"})
        assert (await receive(socket))["code"] == "rate_limited"
    await send(socket, {"type": "ping"})
    assert (await receive(socket))["code"] == "bad_request"
    assert await close_code(socket) == 4400


# --- forged credentials cost no query ----------------------------------------------


@contextmanager
def queries_on_every_thread() -> Iterator[list[str]]:
    """Every SQL statement any thread runs (CaptureQueriesContext sees only the
    calling thread's connection; the handshake queries on worker threads)."""
    seen: list[str] = []
    original = db_utils.CursorWrapper._execute_with_wrappers

    def counting(self, sql, *args, **kwargs):
        seen.append(sql)
        return original(self, sql, *args, **kwargs)

    db_utils.CursorWrapper._execute_with_wrappers = counting
    try:
        yield seen
    finally:
        db_utils.CursorWrapper._execute_with_wrappers = original


def _session_cookie(username: str) -> str:
    client = Client()
    client.force_login(get_user_model().objects.create_user(username))
    return client.cookies["sessionid"].value


FORGED = {
    "short-session-cookie": ("", "sessionid=nosuchsession123"),
    "session-cookie-with-bad-characters": ("", "sessionid=" + "A-" * 16),
    "huge-session-cookie": ("", "sessionid=" + "a" * 100_000),
    "api-key-too-short": ("token=brk_12345678_" + "a" * 42, ""),
    "api-key-bad-prefix": ("token=brk_1234567z_" + "a" * 43, ""),
    "api-key-bad-alphabet": ("token=brk_12345678_" + "a" * 42 + "%2B", ""),
    "api-key-too-long": ("token=brk_12345678_" + "a" * 10_000, ""),
}


@pytest.mark.parametrize(("query", "cookie"), FORGED.values(), ids=FORGED.keys())
async def test_forged_credentials_are_refused_without_a_query(
    open_ws, settings, query, cookie
):
    settings.BRIDGE_AUTH_MODE = "token"
    headers = [(b"cookie", cookie.encode())] if cookie else []
    with queries_on_every_thread() as queries:
        error, code = await refused(open_ws, query, headers=headers)
    assert (error["code"], code) == ("unauthenticated", 4401)
    assert queries == []


async def test_a_real_session_cookie_is_looked_up(open_ws, settings):
    """The counterpart of the test above: the counter does see handshake queries."""
    settings.BRIDGE_AUTH_MODE = "token"
    username = fresh_user_id("sess")
    cookie = await sync_to_async(_session_cookie)(username)
    headers = [(b"cookie", f"sessionid={cookie}".encode())]
    with queries_on_every_thread() as queries:
        socket = await open_ws("", headers=headers)
        frame = await receive(socket)
    assert (frame["type"], frame["user_id"]) == ("connected", username)
    assert queries


# --- the WebSocket side's database pool --------------------------------------------


def _push(user: str, count: int) -> None:
    for n in range(count):
        delivery.push(
            PushRequest(targets=(user,), data={"n": n}, event="message", sender=None)
        )


async def test_replay_does_not_wait_for_the_shared_database_thread(open_ws):
    """asgiref's one shared thread busy (say, with a flood of lookups queued
    behind it) does not hold back a handshake and its replay."""
    user = fresh_user_id()
    await database_sync_to_async(_push)(user, 3)
    release = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(release.wait, thread_sensitive=True)())
    try:
        socket = await open_ws(f"user_id={user}&last_seq=0")
        frames = [await receive(socket) for _ in range(4)]
    finally:
        release.set()
        await busy
    assert [f["type"] for f in frames] == ["connected", *["message"] * 3]
    assert [f["seq"] for f in frames[1:]] == [1, 2, 3]


async def test_the_websocket_database_pool_has_at_most_its_threads(settings):
    from messaging import ws_database

    assert ws_database.executor()._max_workers == settings.BRIDGE_WS_DB_THREADS
    names = await asyncio.gather(
        *(
            ws_database.run_db(lambda: threading.current_thread().name)
            for _ in range(20)
        )
    )
    assert {name.startswith("bridge-ws-db") for name in names} == {True}
    assert len(set(names)) <= settings.BRIDGE_WS_DB_THREADS
