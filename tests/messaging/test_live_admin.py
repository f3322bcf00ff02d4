"""Presence in the Django admin (SPEC §6 operations, for staff): the "Live
connections" page lists who is connected and disconnects them; the public
accounts' changelist shows each bot's live connections.

In process: sockets are channels' WebsocketCommunicator on the production ASGI
application and channel layer, on the suite's Redis; `admin_client`
(pytest-django) is a test Client logged in as a superuser. The admin views are
sync and call Redis through async_to_sync, so the async tests call the client
through sync_to_async, the way an ASGI server would run them.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts import selectors
from accounts.models import PublicAccount
from bridge_project.asgi import application
from messaging import presence
from messaging.instance import INSTANCE_NAME
from tests.support.ids import fresh_user_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

TIMEOUT = 5
LIVE = "/admin/live-connections/"
CHANGELIST = "/admin/accounts/publicaccount/"

Opener = Callable[[str], Awaitable[tuple[WebsocketCommunicator, dict[str, Any]]]]


@pytest.fixture
async def connect() -> AsyncIterator[Opener]:
    """Open a socket as a user; returns it and its `connected` frame. Every
    socket is disconnected at teardown, pass or fail."""
    opened: list[WebsocketCommunicator] = []

    async def open_socket(user_id: str):
        communicator = WebsocketCommunicator(application, f"/ws?user_id={user_id}")
        opened.append(communicator)
        accepted, _ = await communicator.connect(timeout=TIMEOUT)
        assert accepted
        connected = json.loads(await communicator.receive_from(timeout=TIMEOUT))
        assert connected["type"] == "connected", connected
        return communicator, connected

    yield open_socket
    for communicator in opened:
        if not communicator.future.done():
            await communicator.disconnect(timeout=TIMEOUT)


@pytest.fixture
async def ci_bot(redis_server) -> AsyncIterator[str]:
    """`ci_bot`, existing (transaction=True tests truncate the default accounts)
    and with no connections left in presence by processes other tests killed."""
    await PublicAccount.objects.aget_or_create(handle="ci_bot")
    selectors.invalidate_cache()
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as direct:
        direct.delete(presence.user_key("ci_bot"))
    yield "ci_bot"
    selectors.invalidate_cache()


def listed(page) -> dict[str, dict[str, Any]]:
    assert page.status_code == 200, page
    return {user["user_id"]: user for user in page.context["users"]}


async def test_live_connections_page_lists_a_connected_user(
    admin_client: Client, connect: Opener
):
    user = fresh_user_id("live")
    _, connected = await connect(user)

    page = await sync_to_async(admin_client.get)(LIVE)

    entry = listed(page)[user]
    assert entry["connections"] == 1
    (detail,) = entry["details"]
    assert detail["connection_id"] == connected["connection_id"]
    assert detail["instance"] == INSTANCE_NAME
    html = page.content.decode()
    assert "Live connections" in html
    assert f'name="user_id" value="{user}"' in html
    assert 'value="Disconnect"' in html


async def test_disconnect_button_closes_the_users_connection_with_4000(
    admin_client: Client, connect: Opener
):
    user = fresh_user_id("kicked")
    communicator, _ = await connect(user)

    reply = await sync_to_async(admin_client.post)(LIVE, {"user_id": user})

    assert reply.status_code == 302
    assert reply.url == LIVE
    error = json.loads(await communicator.receive_from(timeout=TIMEOUT))
    assert error["type"] == "error" and error["code"] == "disconnected", error
    assert await communicator.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": 4000,
    }
    followed = await sync_to_async(admin_client.get)(LIVE)
    notes = [str(message) for message in followed.context["messages"]]
    assert notes == [f"Closed 1 connection(s) of {user}."]


async def test_only_staff_see_the_page_or_disconnect(connect: Opener):
    user = fresh_user_id("safe")
    communicator, _ = await connect(user)
    anonymous = Client()

    page = await sync_to_async(anonymous.get)(LIVE)
    post = await sync_to_async(anonymous.post)(LIVE, {"user_id": user})

    for reply in (page, post):
        assert reply.status_code == 302
        assert reply.url.startswith("/admin/login/")
    assert await communicator.receive_nothing(timeout=0.5)


async def test_public_account_changelist_shows_online_now_for_a_connected_bot(
    admin_client: Client, connect: Opener, ci_bot: str
):
    before = await sync_to_async(admin_client.get)(CHANGELIST)
    await connect(ci_bot)

    after = await sync_to_async(admin_client.get)(CHANGELIST)

    assert online_now(before, ci_bot) == "0"
    assert online_now(after, ci_bot) == "1"
    assert "Online now" in after.content.decode()


def online_now(page, handle: str) -> str:
    """The "Online now" cell of `handle`'s row in the changelist."""
    assert page.status_code == 200, page
    html = page.content.decode()
    for row in re.findall(r"<tr[^>]*>.*?</tr>", html, re.S):
        if re.search(rf">{re.escape(handle)}</a>", row):
            cell = re.search(r'<td class="field-live_connections">(.*?)</td>', row)
            assert cell, row
            return cell.group(1)
    raise AssertionError(f"no row for {handle}")
