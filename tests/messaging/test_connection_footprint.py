"""What an idle /ws connection keeps in memory (S4: RSS per idle connection).

The channel layer's per-consumer inbox, the consumer's dispatch loop and the
session middleware replace channels' heavier defaults; these tests pin both
their behaviour and the per-connection objects they are there to save.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from bridge_project.asgi import application
from bridge_project.channel_layer import ChannelInbox
from messaging.realtime.session_auth import SessionAuthMiddleware, session_user

TIMEOUT = 5


# --- ChannelInbox ------------------------------------------------------------------


async def test_inbox_hands_out_messages_in_arrival_order():
    inbox = ChannelInbox()
    for message in (b"1", b"2", b"3"):
        inbox.put_nowait(message)
    assert [await inbox.get() for _ in range(3)] == [b"1", b"2", b"3"]


async def test_inbox_get_waits_for_the_next_message():
    inbox = ChannelInbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait(b"late")
    assert await asyncio.wait_for(reader, TIMEOUT) == b"late"


async def test_a_cancelled_get_loses_no_message():
    inbox = ChannelInbox()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(inbox.get(), 0.01)
    inbox.put_nowait(b"kept")
    assert await asyncio.wait_for(inbox.get(), TIMEOUT) == b"kept"


async def test_a_reader_cancelled_after_its_wake_up_passes_the_message_on():
    inbox = ChannelInbox()
    first = asyncio.ensure_future(inbox.get())
    second = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(b"only")  # wakes `first`...
    first.cancel()  # ...which gives up before it runs
    assert await asyncio.wait_for(second, TIMEOUT) == b"only"


async def test_the_layer_delivers_group_messages_into_the_inbox():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    assert isinstance(layer.inbox(channel), ChannelInbox)
    await layer.group_add("it.inbox", channel)
    event = {"type": "bridge.deliver", "seq": None, "frame": "{}"}
    await layer.group_send("it.inbox", event)
    assert await asyncio.wait_for(layer.receive(channel), TIMEOUT) == event
    await layer.flush()


# --- the consumer ------------------------------------------------------------------


async def _open(user_id: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws?user_id={user_id}")
    accepted, _ = await communicator.connect(timeout=TIMEOUT)
    assert accepted
    connected = json.loads(await communicator.receive_from(timeout=TIMEOUT))
    assert connected["type"] == "connected", connected
    return communicator


def _layer_channels() -> set[str]:
    return set(get_channel_layer()._get_layer().channels)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_an_idle_connection_runs_one_task_besides_its_own():
    """channels' await_many_dispatch would keep two more (and an asyncio.wait)."""
    # The first connection also starts the process-wide heartbeat and Redis watch.
    first = await _open("footprint0")
    tasks_before = len(asyncio.all_tasks())
    others = [await _open(f"footprint{n}") for n in range(1, 6)]
    # Per connection: the application (the communicator's) and the forwarder.
    assert len(asyncio.all_tasks()) - tasks_before == 5 * 2
    for communicator in [first, *others]:
        await communicator.disconnect(timeout=TIMEOUT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_closed_connection_leaves_no_channel_behind():
    channels_before = _layer_channels()
    communicator = await _open("footprint-gone")
    assert len(_layer_channels() - channels_before) == 1
    await communicator.disconnect(timeout=TIMEOUT)
    assert _layer_channels() == channels_before


# --- the session middleware ------------------------------------------------------


def _websocket_scope(*headers: tuple[bytes, bytes]) -> dict:
    return {"type": "websocket", "path": "/ws", "headers": list(headers)}


async def _scope_seen_by_inner(scope: dict) -> dict:
    seen: dict = {}

    async def inner(scope, receive, send):
        seen.update(scope)

    await SessionAuthMiddleware(inner)(scope, None, None)
    return seen


async def test_without_a_session_cookie_the_user_is_anonymous_at_once():
    seen = await _scope_seen_by_inner(_websocket_scope((b"cookie", b"theme=dark")))
    assert seen["cookies"] == {"theme": "dark"}
    assert seen["session"].session_key is None
    assert not seen["user"].is_authenticated


async def test_cookieless_connections_keep_their_own_sessions_apart():
    first = await _scope_seen_by_inner(_websocket_scope())
    second = await _scope_seen_by_inner(_websocket_scope())
    first["session"]["seen"] = True  # nothing in Bridge writes one; still apart
    assert "seen" not in second["session"]
    assert first["session"].session_key is second["session"].session_key is None
    assert session_user(first) is session_user(second)
    assert not session_user(first).is_authenticated


@pytest.mark.django_db
async def test_an_unknown_session_cookie_gives_an_anonymous_user():
    seen = await _scope_seen_by_inner(
        _websocket_scope((b"cookie", b"sessionid=nosuchsession123"))
    )
    assert seen["cookies"] == {"sessionid": "nosuchsession123"}
    assert not seen["user"].is_authenticated


async def test_the_caller_scope_is_left_as_it_was():
    scope = _websocket_scope()
    await _scope_seen_by_inner(scope)
    assert set(scope) == {"type", "path", "headers"}


async def test_http_scopes_are_refused():
    with pytest.raises(ValueError, match="WebSocket"):
        await _scope_seen_by_inner({"type": "http", "headers": []})
