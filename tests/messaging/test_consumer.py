"""The WebSocket endpoint /ws, in process (SPEC §2, §3, §5).

Each test talks to bridge_project.asgi.application through channels'
WebsocketCommunicator; the channel layer is the production one on the suite's Redis.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient
from django.utils import timezone

from accounts import selectors
from accounts.models import PublicAccount
from bridge_project.asgi import application
from messaging.models import Message, StreamEntry, StreamSequence
from messaging.realtime.consumers import BridgeConsumer
from messaging.realtime.heartbeat import heartbeat_for_loop
from messaging.streams import delivery
from messaging.streams.delivery import PushRequest
from messaging.streams.names import personal_stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

TIMEOUT = 5
SPEC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

Opener = Callable[..., Awaitable[WebsocketCommunicator]]


@pytest.fixture
async def open_ws() -> AsyncIterator[Opener]:
    """Open sockets on /ws; every one is disconnected at teardown, pass or fail."""
    opened: list[WebsocketCommunicator] = []

    async def open_socket(query: str = "user_id=alice") -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(application, f"/ws?{query}")
        opened.append(communicator)
        accepted, _ = await communicator.connect(timeout=TIMEOUT)
        assert accepted, "a handshake is always accepted, then closed if refused"
        return communicator

    yield open_socket
    for communicator in opened:
        # A receive that timed out has already cancelled the application.
        if not communicator.future.done():
            await communicator.disconnect(timeout=TIMEOUT)


@pytest.fixture
async def ci_bot() -> AsyncIterator[str]:
    """The `ci_bot` public account, whatever earlier tests' flushes removed.

    transaction=True tests truncate every table afterwards, the rows of the
    default-accounts data migration included; the handle cache is per process.
    """
    await PublicAccount.objects.aget_or_create(handle="ci_bot")
    selectors.invalidate_cache()
    yield "ci_bot"
    selectors.invalidate_cache()


async def connect(open_ws: Opener, query: str = "user_id=alice"):
    """An open socket and its `connected` frame."""
    communicator = await open_ws(query)
    connected = await receive(communicator)
    assert connected["type"] == "connected", connected
    return communicator, connected


async def receive(communicator: WebsocketCommunicator) -> dict[str, Any]:
    return json.loads(await communicator.receive_from(timeout=TIMEOUT))


async def send(communicator: WebsocketCommunicator, frame: Any) -> None:
    await communicator.send_to(
        text_data=frame if isinstance(frame, str) else json.dumps(frame)
    )


async def close_code(communicator: WebsocketCommunicator) -> int:
    output = await communicator.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close", output
    return output.get("code", 1000)


async def assert_still_open(communicator: WebsocketCommunicator) -> None:
    await send(communicator, {"type": "ping"})
    assert (await receive(communicator))["type"] == "pong"


def push(*targets: str, data: Any = None, **kwargs: Any) -> delivery.PushReceipt:
    fields: dict[str, Any] = {"event": "message", "sender": None, **kwargs}
    return delivery.push(PushRequest(targets=targets, data=data, **fields))


apush = database_sync_to_async(push)


# --- handshake --------------------------------------------------------------------


async def test_connected_frame_has_spec_fields(open_ws):
    _, connected = await connect(open_ws)
    assert set(connected) == {
        "type",
        "connection_id",
        "user_id",
        "server_time",
        "heartbeat_interval",
        "last_seq",
        "read_seq",
        "unread",
        "expires_at",
    }
    assert connected["user_id"] == "alice"
    # SPEC §10: null for credentials that do not expire (open mode here).
    assert connected["expires_at"] is None
    assert isinstance(connected["connection_id"], str) and connected["connection_id"]
    assert SPEC_TIME.match(connected["server_time"])
    assert connected["heartbeat_interval"] == 30
    assert connected["last_seq"] == 0


async def test_each_connection_gets_its_own_id(open_ws):
    _, first = await connect(open_ws)
    _, second = await connect(open_ws)
    assert first["connection_id"] != second["connection_id"]


async def test_connected_reports_the_highest_stored_seq(open_ws):
    for _ in range(3):
        await apush("alice", data=1)
    await apush("bob", data=1)
    _, connected = await connect(open_ws)
    assert connected["last_seq"] == 3


@pytest.mark.parametrize(
    "query",
    [
        "user_id=-alice",
        "user_id=al%20ice",
        "user_id=" + "a" * 65,
        "",
        "user_id=alice&user_id=bob",
        "user_id=alice&last_seq=-1",
        "user_id=alice&last_seq=abc",
    ],
)
async def test_bad_handshake_gets_bad_request_then_close_4400(open_ws, query):
    communicator = await open_ws(query)
    error = await receive(communicator)
    assert error["type"] == "error"
    assert error["code"] == "bad_request"
    assert isinstance(error["message"], str) and error["message"]
    assert await close_code(communicator) == 4400


# --- client frames ----------------------------------------------------------------


async def test_ping_gets_pong_with_timestamp(open_ws):
    communicator, _ = await connect(open_ws)
    await send(communicator, {"type": "ping"})
    pong = await receive(communicator)
    assert set(pong) == {"type", "timestamp"}
    assert pong["type"] == "pong"
    assert SPEC_TIME.match(pong["timestamp"])


async def test_pong_and_ack_get_no_reply_and_keep_the_connection(open_ws):
    communicator, _ = await connect(open_ws)
    await send(communicator, {"type": "pong"})
    await send(communicator, {"type": "ack", "seq": 0})
    assert await communicator.receive_nothing(timeout=0.3)
    await assert_still_open(communicator)


async def test_disconnect_frame_closes_with_1000(open_ws):
    communicator, _ = await connect(open_ws)
    await send(communicator, {"type": "disconnect"})
    assert await close_code(communicator) == 1000


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("this is not json", "invalid_json"),
        ("[" * 60000, "invalid_json"),
        (b"\x00\x01binary", "invalid_frame"),
        ("[1, 2]", "invalid_frame"),
        ({"no": "type"}, "invalid_frame"),
        ({"type": "subscribe"}, "invalid_frame"),
        ({"type": "ack", "seq": "1"}, "invalid_frame"),
        ({"type": "message", "text": 5}, "invalid_frame"),
        ({"type": "message", "text": "x" * 4097}, "too_large"),
        ({"type": "message", "text": "hello, nobody"}, "no_recipient"),
    ],
    ids=[
        "not-json",
        "deep-nesting",
        "binary",
        "not-object",
        "no-type",
        "unknown-type",
        "ack-seq-string",
        "text-number",
        "text-too-long",
        "no-recipient",
    ],
)
async def test_refused_frame_gets_error_and_the_connection_stays_open(
    open_ws, frame, code
):
    communicator, _ = await connect(open_ws)
    if isinstance(frame, bytes):
        await communicator.send_to(bytes_data=frame)
    else:
        await send(communicator, frame)
    error = await receive(communicator)
    assert error["type"] == "error"
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    await assert_still_open(communicator)


@pytest.mark.parametrize("to", ["not a user", "bob/../alice", "b" * 65])
async def test_message_to_that_is_not_a_user_id_is_invalid_frame(open_ws, ci_bot, to):
    communicator, _ = await connect(open_ws, "user_id=ci_bot")
    await send(communicator, {"type": "message", "text": "hi", "to": to})
    error = await receive(communicator)
    assert (error["type"], error["code"]) == ("error", "invalid_frame")
    await assert_still_open(communicator)


async def test_lone_surrogate_in_a_message_is_refused_and_the_connection_stays_open(
    open_ws, ci_bot
):
    bot, _ = await connect(open_ws, "user_id=ci_bot")
    alice, _ = await connect(open_ws)
    await send(alice, '{"type": "message", "text": "hi @ci_bot \\ud800", "ref": "s1"}')
    error = await receive(alice)
    assert error["type"] == "error"
    assert error["code"] in ("invalid_json", "invalid_frame")
    await assert_still_open(alice)
    assert await bot.receive_nothing(timeout=0.3)


async def test_error_echoes_the_frames_ref(open_ws):
    communicator, _ = await connect(open_ws)
    await send(communicator, {"type": "message", "text": "x" * 4097, "ref": "r-17"})
    error = await receive(communicator)
    assert (error["code"], error["ref"]) == ("too_large", "r-17")


async def test_ordinary_user_sending_to_another_ordinary_user_is_forbidden(open_ws):
    communicator, _ = await connect(open_ws)
    await send(
        communicator, {"type": "message", "text": "hi", "to": "bob", "ref": "f1"}
    )
    error = await receive(communicator)
    assert error["type"] == "error"
    assert (error["code"], error.get("ref")) == ("forbidden", "f1")
    await assert_still_open(communicator)


async def test_client_messages_over_the_rate_limit_are_rate_limited(
    open_ws, settings, ci_bot
):
    settings.BRIDGE_CLIENT_MESSAGES_PER_MINUTE = 1
    communicator, _ = await connect(open_ws)
    await send(communicator, {"type": "message", "text": "hi @ci_bot", "ref": "m1"})
    first = await receive(communicator)
    assert first.get("code") != "rate_limited", first
    await send(communicator, {"type": "message", "text": "hi @ci_bot", "ref": "m2"})
    second = await receive(communicator)
    assert second["type"] == "error"
    assert (second["code"], second.get("ref")) == ("rate_limited", "m2")
    await assert_still_open(communicator)


async def test_twentieth_refused_frame_closes_with_4400(open_ws):
    communicator, _ = await connect(open_ws)
    for _ in range(19):
        await send(communicator, "not json")
        assert (await receive(communicator))["code"] == "invalid_json"
    await assert_still_open(communicator)
    await send(communicator, "not json")
    error = await receive(communicator)
    assert (error["type"], error["code"]) == ("error", "bad_request")
    assert await close_code(communicator) == 4400


async def test_frame_over_max_frame_bytes_closes_with_1009(open_ws, settings):
    settings.BRIDGE_MAX_FRAME_BYTES = 1024
    communicator, _ = await connect(open_ws)
    await send(communicator, {"type": "ping", "pad": "x" * 1100})
    assert await close_code(communicator) == 1009


async def test_frame_size_is_measured_in_utf8_bytes(open_ws, settings):
    settings.BRIDGE_MAX_FRAME_BYTES = 1024
    communicator, _ = await connect(open_ws)
    # 400 characters, 1,200 bytes.
    await send(
        communicator, json.dumps({"type": "ping", "pad": "€" * 400}, ensure_ascii=False)
    )
    assert await close_code(communicator) == 1009


async def test_binary_frame_over_max_frame_bytes_closes_with_1009(open_ws, settings):
    settings.BRIDGE_MAX_FRAME_BYTES = 1024
    communicator, _ = await connect(open_ws)
    await communicator.send_to(bytes_data=b"x" * 2000)
    assert await close_code(communicator) == 1009


async def test_frame_of_exactly_max_frame_bytes_is_accepted(open_ws, settings):
    settings.BRIDGE_MAX_FRAME_BYTES = 1024
    communicator, _ = await connect(open_ws)
    prefix = '{"type":"ping","pad":"'
    frame = prefix + "x" * (1024 - len(prefix) - 2) + '"}'
    assert len(frame.encode()) == 1024
    await send(communicator, frame)
    assert (await receive(communicator))["type"] == "pong"


# --- delivery ---------------------------------------------------------------------


async def test_push_reaches_the_connected_user_with_spec_fields(open_ws):
    communicator, _ = await connect(open_ws)
    receipt = await apush(
        "alice",
        data={"text": "build #42 passed"},
        event="notification",
        sender="ci_bot",
    )
    frame = await receive(communicator)
    assert set(frame) == {
        "type",
        "id",
        "seq",
        "event",
        "from",
        "to",
        "data",
        "timestamp",
        "mentions",
    }
    assert frame["type"] == "message"
    assert frame["id"] == receipt.message_id
    assert frame["seq"] == 1
    assert frame["event"] == "notification"
    assert frame["from"] == "ci_bot"
    assert frame["to"] == "alice"
    assert frame["data"] == {"text": "build #42 passed"}
    assert SPEC_TIME.match(frame["timestamp"])
    assert frame["mentions"] == []


async def test_push_reaches_every_connection_of_the_user_and_no_one_else(open_ws):
    first, _ = await connect(open_ws)
    second, _ = await connect(open_ws)
    bob, _ = await connect(open_ws, "user_id=bob")
    await apush("alice", data="hi")
    assert (await receive(first))["data"] == "hi"
    assert (await receive(second))["data"] == "hi"
    assert await bob.receive_nothing(timeout=0.3)


async def test_pushes_arrive_in_seq_order(open_ws):
    communicator, _ = await connect(open_ws)
    for i in range(10):
        await apush("alice", data=i)
    frames = [await receive(communicator) for _ in range(10)]
    assert [(f["seq"], f["data"]) for f in frames] == [(i + 1, i) for i in range(10)]


async def test_type_inside_data_does_not_change_routing(open_ws):
    communicator, _ = await connect(open_ws)
    payloads = [
        {"type": "websocket.close", "code": 4000},
        {"type": "bridge.deliver", "frame": "{}", "seq": 99},
        {"type": "connected"},
    ]
    for payload in payloads:
        await apush("alice", data=payload)
    frames = [await receive(communicator) for _ in payloads]
    assert [f["type"] for f in frames] == ["message"] * 3
    assert [f["data"] for f in frames] == payloads
    assert [f["seq"] for f in frames] == [1, 2, 3]
    await assert_still_open(communicator)


async def test_live_only_push_arrives_with_null_seq(open_ws):
    communicator, _ = await connect(open_ws)
    await apush("alice", data="live", persist=False)
    frame = await receive(communicator)
    assert (frame["seq"], frame["data"], frame["to"]) == (None, "live", "alice")


async def test_broadcast_reaches_every_connected_user_with_null_to_and_seq(open_ws):
    alice, _ = await connect(open_ws)
    bob, _ = await connect(open_ws, "user_id=bob")
    await database_sync_to_async(delivery.push)(
        PushRequest(
            targets=(), event="maintenance", data="soon", sender=None, broadcast=True
        )
    )
    for communicator in (alice, bob):
        frame = await receive(communicator)
        assert (frame["event"], frame["to"], frame["seq"]) == (
            "maintenance",
            None,
            None,
        )


async def test_push_api_reports_the_recipients_open_connections(open_ws):
    # Presence lives in Redis, which outlives each test: ids no other test uses.
    await connect(open_ws, "user_id=presence_a")
    await connect(open_ws, "user_id=presence_a")
    response = await AsyncClient().post(
        "/sse/push",
        data={"user_ids": ["presence_a", "presence_b"], "message": "hi"},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    recipients = {r["user_id"]: r for r in response.json()["recipients"]}
    assert recipients["presence_a"]["online"] is True
    assert recipients["presence_a"]["connections"] == 2
    assert recipients["presence_b"]["online"] is False
    assert recipients["presence_b"]["connections"] == 0


async def test_public_account_may_address_an_ordinary_user_with_to(open_ws, ci_bot):
    bot, _ = await connect(open_ws, "user_id=ci_bot")
    alice, _ = await connect(open_ws)
    await send(bot, {"type": "message", "text": "done", "to": "alice", "ref": "b1"})
    ack = await receive(bot)
    assert (ack["type"], ack["recipients"]) == ("ack", ["alice"]), ack
    assert (await receive(alice))["from"] == "ci_bot"


@pytest.mark.parametrize("impostor", ["CI_BOT", "Ci_Bot", "ci_boT"])
async def test_case_variant_of_a_bot_handle_is_an_ordinary_user(
    open_ws, ci_bot, impostor
):
    # User ids are case-sensitive: `CI_BOT` is someone else, with none of
    # ci_bot's right to address anyone.
    impostor_ws, _ = await connect(open_ws, f"user_id={impostor}")
    alice, _ = await connect(open_ws)
    await send(
        impostor_ws, {"type": "message", "text": "hi", "to": "alice", "ref": "i1"}
    )
    error = await receive(impostor_ws)
    assert (error["type"], error["code"], error["ref"]) == ("error", "forbidden", "i1")
    assert await alice.receive_nothing(timeout=0.3)
    await assert_still_open(impostor_ws)


async def test_client_message_mentioning_a_bot_is_acked_and_delivered(open_ws, ci_bot):
    bot, _ = await connect(open_ws, "user_id=ci_bot")
    alice, _ = await connect(open_ws)
    await send(
        alice,
        {"type": "message", "text": "ping (@CI_BOT)", "data": {"k": 1}, "ref": "a1"},
    )
    ack = await receive(alice)
    assert set(ack) == {"type", "ref", "id", "recipients"}
    assert (ack["type"], ack["ref"], ack["recipients"]) == ("ack", "a1", ["ci_bot"])
    frame = await receive(bot)
    assert frame["id"] == ack["id"]
    assert (frame["event"], frame["from"], frame["to"]) == (
        "message",
        "alice",
        "ci_bot",
    )
    assert frame["data"] == {"text": "ping (@CI_BOT)", "data": {"k": 1}}
    assert frame["mentions"] == ["ci_bot"]
    assert isinstance(frame["seq"], int)
    assert await alice.receive_nothing(timeout=0.3)


# --- resume (SPEC §5) -------------------------------------------------------------


async def test_resume_from_zero_replays_stored_messages_in_order_then_live(open_ws):
    for i in range(3):
        await apush("alice", data=i)
    communicator, connected = await connect(open_ws, "user_id=alice&last_seq=0")
    assert connected["last_seq"] == 3
    replayed = [await receive(communicator) for _ in range(3)]
    assert [(f["type"], f["seq"], f["data"]) for f in replayed] == [
        ("message", 1, 0),
        ("message", 2, 1),
        ("message", 3, 2),
    ]
    assert all(f["to"] == "alice" for f in replayed)
    await apush("alice", data="live")
    live = await receive(communicator)
    assert (live["seq"], live["data"]) == (4, "live")
    assert await communicator.receive_nothing(timeout=0.3)


async def test_replayed_message_matches_the_live_one(open_ws):
    live_socket, _ = await connect(open_ws)
    await apush("alice", data={"k": [1, 2]}, event="build.done", sender="ci_bot")
    live = await receive(live_socket)
    replaying, _ = await connect(open_ws, "user_id=alice&last_seq=0")
    assert await receive(replaying) == live


async def test_resume_from_n_replays_only_later_messages(open_ws):
    for i in range(4):
        await apush("alice", data=i)
    communicator, _ = await connect(open_ws, "user_id=alice&last_seq=2")
    replayed = [await receive(communicator) for _ in range(2)]
    assert [f["seq"] for f in replayed] == [3, 4]
    assert await communicator.receive_nothing(timeout=0.3)


async def test_without_last_seq_only_live_messages_arrive(open_ws):
    await apush("alice", data="old")
    communicator, connected = await connect(open_ws)
    assert connected["last_seq"] == 1
    assert await communicator.receive_nothing(timeout=0.3)
    await apush("alice", data="new")
    frame = await receive(communicator)
    assert (frame["seq"], frame["data"]) == (2, "new")


async def test_resume_past_retention_announces_history_truncated(open_ws):
    for i in range(4):
        await apush("alice", data=i)

    def expire_first_two() -> None:
        old = StreamEntry.objects.filter(stream=personal_stream("alice"), seq__lte=2)
        Message.objects.filter(stream_entries__in=old).delete()

    await database_sync_to_async(expire_first_two)()
    communicator, _ = await connect(open_ws, "user_id=alice&last_seq=0")
    truncated = await receive(communicator)
    assert truncated == {"type": "history_truncated", "oldest_seq": 3}
    assert [(await receive(communicator))["seq"] for _ in range(2)] == [3, 4]


async def test_a_gap_in_the_live_stream_is_filled_from_the_store(open_ws):
    communicator, _ = await connect(open_ws)

    def store_without_sending() -> None:
        # A message whose layer event never arrived (late, or lost).
        message = Message.objects.create(
            event="message", sender=None, data="missed", created_at=timezone.now()
        )
        StreamEntry.objects.create(
            message=message, stream=personal_stream("alice"), seq=1
        )
        StreamSequence.objects.create(stream=personal_stream("alice"), last_seq=1)

    await database_sync_to_async(store_without_sending)()
    await apush("alice", data="next")
    frames = [await receive(communicator) for _ in range(2)]
    assert [(f["seq"], f["data"]) for f in frames] == [(1, "missed"), (2, "next")]


async def test_a_client_frame_proves_liveness_on_arrival_even_behind_a_busy_inbox(
    open_ws, monkeypatch
):
    # A process fanning out a busy topic can hold a connection's pong in its
    # inbox, behind deliveries, for longer than the heartbeat timeout.
    handling = asyncio.Event()
    release = asyncio.Event()

    async def slow_delivery(self, event: dict) -> None:
        handling.set()
        await release.wait()

    monkeypatch.setattr(BridgeConsumer, "bridge_deliver", slow_delivery)
    user = f"busy-{uuid.uuid4().hex[:8]}"
    communicator, _ = await connect(open_ws, f"user_id={user}")
    consumer = next(
        member
        for member in heartbeat_for_loop().members
        if member.connection.user_id == user
    )
    await get_channel_layer().group_send(
        f"user.{user}",
        {"type": "bridge.deliver", "stream": None, "seq": None, "frame": "{}"},
    )
    await asyncio.wait_for(handling.wait(), TIMEOUT)
    before = consumer.last_frame_at

    await send(communicator, {"type": "pong"})
    await asyncio.sleep(0.1)

    assert consumer.last_frame_at > before  # while the delivery still blocks
    release.set()


def _deliver(user: str, seq: int, marker: str) -> dict[str, Any]:
    frame = json.dumps({"type": "message", "seq": seq, "data": marker})
    return {
        "type": "bridge.deliver",
        "stream": personal_stream(user),
        "seq": seq,
        "frame": frame,
    }


async def test_events_that_arrive_out_of_order_go_out_in_order_without_the_store(
    open_ws,
):
    # Nothing is stored: had seq 2 made the connection read the store, seq 1
    # would have been stepped over and then dropped as already sent.
    user = f"swap-{uuid.uuid4().hex[:8]}"
    communicator, _ = await connect(open_ws, f"user_id={user}")
    layer = get_channel_layer()

    await layer.group_send(f"user.{user}", _deliver(user, 2, "second"))
    await layer.group_send(f"user.{user}", _deliver(user, 1, "first"))

    assert [(await receive(communicator))["data"] for _ in range(2)] == [
        "first",
        "second",
    ]


async def test_an_event_that_never_arrives_is_read_from_the_store_after_a_wait(
    open_ws,
):
    user = f"lost-{uuid.uuid4().hex[:8]}"
    communicator, _ = await connect(open_ws, f"user_id={user}")
    # Stored with seq 1, its live event lost; seq 2's event arrives.
    await database_sync_to_async(push)(user, data="stored")
    assert (await receive(communicator))["data"] == "stored"  # its own event
    stored = await database_sync_to_async(
        lambda: StreamEntry.objects.filter(stream=personal_stream(user)).count()
    )()
    assert stored == 1
    await database_sync_to_async(
        lambda: StreamSequence.objects.filter(stream=personal_stream(user)).update(
            last_seq=3
        )
    )()
    message = await database_sync_to_async(
        lambda: Message.objects.create(
            event="message", data="from the store", created_at=timezone.now()
        )
    )()
    await database_sync_to_async(
        lambda: StreamEntry.objects.create(
            message=message, stream=personal_stream(user), seq=2
        )
    )()

    await get_channel_layer().group_send(f"user.{user}", _deliver(user, 3, "live"))

    got = [await receive(communicator) for _ in range(2)]
    assert [(m["seq"], m["data"]) for m in got] == [(2, "from the store"), (3, "live")]
