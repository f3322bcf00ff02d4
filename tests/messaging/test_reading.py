"""Read positions (SPEC §9 "Reading and receipts"): the core
(messaging/streams/reading.py) and the WebSocket `read` frame, with the
`read_seq`/`unread` fields of `connected` and `subscribed`.

Personas: `alice` reads on two connections; `bob` is another user. `room`
topics admit members, `news` topics anyone (open mode, as the suite runs).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bridge_project.asgi import application
from bridge_project.embedded_redis import EmbeddedRedis
from messaging.models import ReadPosition
from messaging.realtime import inbound
from messaging.streams import delivery, reading, retention, topics
from messaging.streams.delivery import PushRequest
from messaging.streams.names import personal_stream
from tests.support.ids import fresh_user_id
from tests.support.topics import fresh_topic, make_namespace

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]

TIMEOUT = 5


@pytest.fixture(autouse=True)
def namespaces(db, redis_server: EmbeddedRedis) -> Iterator[None]:
    make_namespace("room")
    make_namespace("news", subscribe="public")
    make_namespace("ticker", subscribe="public", history_size=0)
    make_namespace("loud", subscribe="public", receipts=True)
    yield


def push_n(
    n: int,
    *,
    user_id: str | None = None,
    topic: str | None = None,
    sender: str | None = "bob",
) -> list[str]:
    """n stored messages; their ids."""
    return [
        delivery.push(
            PushRequest(
                targets=(user_id,) if user_id else (),
                event="message",
                data=i,
                sender=sender,
                topic=topic,
            )
        ).message_id
        for i in range(n)
    ]


apush_n = database_sync_to_async(push_n)


# --- the core -----------------------------------------------------------------------


def test_a_position_only_moves_forward():
    alice = fresh_user_id("r")
    stream = personal_stream(alice)
    push_n(5, user_id=alice)
    assert reading.mark_read(alice, stream, 3) == 3
    assert reading.mark_read(alice, stream, 2) is None
    assert reading.mark_read(alice, stream, 3) is None
    assert reading.mark_read(alice, stream, 4) == 4
    assert reading.position(alice, stream) == reading.Position(4, 1)


def test_a_seq_past_the_streams_last_is_clamped_to_it():
    alice = fresh_user_id("r")
    stream = personal_stream(alice)
    push_n(2, user_id=alice)
    assert reading.mark_read(alice, stream, 2**63 - 1) == 2
    assert reading.mark_read(alice, stream, 99) is None
    push_n(1, user_id=alice)
    assert reading.position(alice, stream) == reading.Position(2, 1)


def test_reading_a_stream_with_nothing_in_it_moves_nothing():
    alice = fresh_user_id("r")
    assert reading.mark_read(alice, personal_stream(alice), 5) is None
    assert reading.mark_read(alice, personal_stream(alice), 0) is None
    assert not ReadPosition.objects.filter(user_id=alice).exists()
    assert reading.position(alice, personal_stream(alice)) == reading.Position(0, 0)


def test_positions_are_per_user_and_stream():
    alice, bob = fresh_user_id("r"), fresh_user_id("r")
    topic = fresh_topic("news")
    push_n(3, user_id=alice)
    push_n(3, user_id=bob)
    push_n(3, topic=topic)
    reading.mark_read(alice, personal_stream(alice), 2)
    reading.mark_read(alice, topic, 1)
    assert reading.unread(alice, personal_stream(alice)) == 1
    assert reading.unread(alice, topic) == 2
    assert reading.unread(bob, personal_stream(bob)) == 3
    assert reading.unread(bob, topic) == 3


def test_unread_follows_pushes_reads_and_purges():
    alice = fresh_user_id("r")
    stream = personal_stream(alice)
    push_n(4, user_id=alice)
    assert reading.unread(alice, stream) == 4
    reading.mark_read(alice, stream, 1)
    assert reading.unread(alice, stream) == 3
    push_n(2, user_id=alice)
    assert reading.unread(alice, stream) == 5
    # Retention keeps the newest 2: unread counts kept messages only.
    retention.purge(ttl_seconds=3600, max_per_user=2)
    assert reading.position(alice, stream) == reading.Position(1, 2)
    # Everything past the TTL goes.
    retention.purge(
        ttl_seconds=60, max_per_user=2, now=timezone.now() + timedelta(hours=1)
    )
    assert reading.position(alice, stream) == reading.Position(1, 0)


def test_mark_read_is_one_query(django_assert_num_queries):
    alice = fresh_user_id("r")
    push_n(3, user_id=alice)
    with django_assert_num_queries(1):
        reading.mark_read(alice, personal_stream(alice), 1)
    with django_assert_num_queries(1):
        reading.mark_read(alice, personal_stream(alice), 2)
    with django_assert_num_queries(1):
        reading.mark_read(alice, personal_stream(alice), 1)


def test_unread_is_one_query_per_stream(django_assert_num_queries):
    alice = fresh_user_id("r")
    rooms = [fresh_topic("room") for _ in range(3)]
    push_n(30, user_id=alice)
    for room in rooms:
        topics.member_add(topic=room, user_id=alice)
        push_n(5, topic=room)
    with django_assert_num_queries(1):
        assert reading.unread(alice, personal_stream(alice)) == 30
    with django_assert_num_queries(1):
        assert reading.member_position(alice, rooms[0]) == reading.Position(0, 5)
    # The summary: the member topics, then one query per stream.
    with django_assert_num_queries(1 + 1 + len(rooms)):
        summary = reading.unread_summary(alice)
    assert summary["personal"] == {"read_seq": 0, "unread": 30}
    assert len(summary["topics"]) == 3


def test_unread_counts_on_the_stream_seq_index():
    """The count is a range over the (stream, seq) unique index, not a scan."""
    alice = fresh_user_id("r")
    push_n(1, user_id=alice)
    with CaptureQueriesContext(connection) as captured:
        reading.position(alice, personal_stream(alice))
    sql = captured.captured_queries[0]["sql"]
    if connection.vendor != "sqlite":
        pytest.skip("the plan below is SQLite's")
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql.replace("%s", "?"))
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "stream_seq" in plan or "USING COVERING INDEX" in plan, plan
    assert "SCAN messaging_streamentry" not in plan, plan


def test_member_position_is_none_for_a_non_member():
    alice = fresh_user_id("r")
    topic = fresh_topic("news")
    push_n(2, topic=topic)
    assert reading.member_position(alice, topic) is None
    topics.member_add(topic=topic, user_id=alice)
    assert reading.member_position(alice, topic) == reading.Position(0, 2)


# --- the WebSocket `read` frame ----------------------------------------------------


@pytest.fixture
async def open_ws() -> AsyncIterator[Any]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(user_id: str) -> tuple[WebsocketCommunicator, dict]:
        communicator = WebsocketCommunicator(application, f"/ws?user_id={user_id}")
        opened.append(communicator)
        accepted, _ = await communicator.connect(timeout=TIMEOUT)
        assert accepted
        connected = await receive(communicator)
        assert connected["type"] == "connected", connected
        return communicator, connected

    yield open_socket
    for communicator in opened:
        if not communicator.future.done():
            await communicator.disconnect(timeout=TIMEOUT)


async def receive(communicator: WebsocketCommunicator) -> dict[str, Any]:
    return json.loads(await communicator.receive_from(timeout=TIMEOUT))


async def send(communicator: WebsocketCommunicator, frame: dict) -> None:
    await communicator.send_to(text_data=json.dumps(frame))


async def assert_quiet(communicator: WebsocketCommunicator) -> None:
    """Nothing but the answer to a ping is waiting."""
    await send(communicator, {"type": "ping"})
    assert (await receive(communicator))["type"] == "pong"


async def subscribe(communicator: WebsocketCommunicator, topic: str) -> dict:
    await send(communicator, {"type": "subscribe", "topic": topic})
    subscribed = await receive(communicator)
    assert subscribed["type"] == "subscribed", subscribed
    return subscribed


@pytest.mark.parametrize(
    ("frame", "code", "topic"),
    [
        ({"type": "read"}, "invalid_frame", None),
        ({"type": "read", "seq": -1}, "invalid_frame", None),
        ({"type": "read", "seq": "3"}, "invalid_frame", None),
        ({"type": "read", "seq": True}, "invalid_frame", None),
        ({"type": "read", "seq": 2**63}, "invalid_frame", None),
        ({"type": "read", "seq": 1, "topic": 7}, "invalid_frame", None),
        ({"type": "read", "seq": 1, "topic": "nocolon"}, "invalid_frame", "nocolon"),
        ({"type": "read", "seq": 1, "topic": "user:bob"}, "invalid_frame", "user:bob"),
        ({"type": "read", "topic": "news:a"}, "invalid_frame", "news:a"),
        ({"type": "read", "seq": 1, "topic": "nope:a"}, "not_found", "nope:a"),
        (
            {"type": "read", "seq": 1, "topic": "room:secret"},
            "forbidden",
            "room:secret",
        ),
    ],
)
async def test_refused_read_frames(open_ws, frame, code, topic):
    ws, _ = await open_ws(fresh_user_id("r"))
    await send(ws, {**frame, "ref": "r1"})
    error = await receive(ws)
    assert error["type"] == "error", error
    assert error["code"] == code
    assert error["ref"] == "r1"
    assert error.get("topic") == topic


async def test_a_read_syncs_to_the_users_other_connections_only(open_ws):
    alice, bob = fresh_user_id("r"), fresh_user_id("r")
    await apush_n(3, user_id=alice)
    first, connected = await open_ws(alice)
    assert (connected["read_seq"], connected["unread"]) == (0, 3)
    second, _ = await open_ws(alice)
    other, _ = await open_ws(bob)
    await send(first, {"type": "read", "seq": 2})
    assert await receive(second) == {"type": "read", "seq": 2}
    await assert_quiet(first)  # no reply, no echo
    await assert_quiet(other)
    # Not forward: nothing to sync.
    await send(first, {"type": "read", "seq": 1})
    await send(first, {"type": "read", "seq": 2})
    await assert_quiet(first)
    await assert_quiet(second)
    _, again = await open_ws(alice)
    assert (again["read_seq"], again["unread"]) == (2, 1)


async def test_a_read_past_the_last_seq_syncs_the_clamped_position(open_ws):
    alice = fresh_user_id("r")
    await apush_n(2, user_id=alice)
    first, _ = await open_ws(alice)
    second, _ = await open_ws(alice)
    await send(first, {"type": "read", "seq": 2**63 - 1})
    assert await receive(second) == {"type": "read", "seq": 2}


async def test_a_topic_read_syncs_with_its_topic(open_ws):
    alice = fresh_user_id("r")
    room = fresh_topic("room")
    await database_sync_to_async(topics.member_add)(topic=room, user_id=alice)
    await apush_n(4, topic=room)
    first, _ = await open_ws(alice)
    second, _ = await open_ws(alice)
    subscribed = await subscribe(first, room)
    assert (subscribed["read_seq"], subscribed["unread"]) == (0, 4)
    await send(first, {"type": "read", "topic": room, "seq": 3})
    assert await receive(second) == {"type": "read", "topic": room, "seq": 3}
    again = await subscribe(second, room)
    assert (again["seq"], again["read_seq"], again["unread"]) == (4, 3, 1)


async def test_a_public_topic_may_be_read_without_subscribing(open_ws):
    alice = fresh_user_id("r")
    news = fresh_topic("news")
    await apush_n(2, topic=news)
    first, _ = await open_ws(alice)
    second, _ = await open_ws(alice)
    await send(first, {"type": "read", "topic": news, "seq": 1})
    assert await receive(second) == {"type": "read", "topic": news, "seq": 1}
    # Not a member: `subscribed` carries no read position.
    subscribed = await subscribe(second, news)
    assert "read_seq" not in subscribed and "unread" not in subscribed
    assert await database_sync_to_async(reading.unread)(alice, news) == 1


async def test_reading_a_live_only_topic_moves_nothing(open_ws):
    alice = fresh_user_id("r")
    ticker = fresh_topic("ticker")
    first, _ = await open_ws(alice)
    second, _ = await open_ws(alice)
    subscribed = await subscribe(first, ticker)
    assert subscribed["seq"] is None and "read_seq" not in subscribed
    await send(first, {"type": "read", "topic": ticker, "seq": 1})
    await assert_quiet(first)
    await assert_quiet(second)


async def test_the_cost_of_a_read_frame(open_ws, redis_server, monkeypatch):
    """Measured, not assumed. A personal read that moves the position: three
    queries (the old position, the upsert, the messages read for receipts)
    and one Redis PUBLISH per group (the reader's, plus one per connected or
    not sender: here anonymous pushes, so none). One that does not move: two
    queries, no Redis command."""
    alice = fresh_user_id("r")
    await apush_n(3, user_id=alice, sender=None)
    first, _ = await open_ws(alice)
    second, _ = await open_ws(alice)
    queries: list[str] = []
    run_db = inbound.run_db

    def counting(func, /, *args, **kwargs):
        def measured(*a, **k):
            with CaptureQueriesContext(connection) as captured:
                result = func(*a, **k)
            queries.extend(q["sql"] for q in captured.captured_queries)
            return result

        return run_db(measured, *args, **kwargs)

    monkeypatch.setattr(inbound, "run_db", counting)
    client = redis.Redis.from_url(redis_server.url)
    try:
        # A first read opens the layer's publishing connection (HELLO, PING):
        # once per process, not per read.
        await send(first, {"type": "read", "seq": 1})
        assert await receive(second) == {"type": "read", "seq": 1}
        await asyncio.sleep(0.1)  # the handshakes' own Redis work is done
        queries[:] = []
        before = _commands(client)
        await send(first, {"type": "read", "seq": 2})
        assert await receive(second) == {"type": "read", "seq": 2}
        moved = _delta(before, _commands(client))
        moved_queries, queries[:] = len(queries), []
        before = _commands(client)
        await send(first, {"type": "read", "seq": 1})
        await assert_quiet(first)
        still = _delta(before, _commands(client))
    finally:
        client.close()
    assert moved_queries == 3
    assert moved == {"publish": 1}, moved
    assert len(queries) == 2
    assert still == {}, still


async def test_the_cost_of_a_topic_read_frame(open_ws, monkeypatch):
    """A read of a subscribed topic is the upsert alone: one query."""
    alice = fresh_user_id("r")
    news = fresh_topic("news")
    await apush_n(3, topic=news)
    first, _ = await open_ws(alice)
    second, _ = await open_ws(alice)
    await subscribe(first, news)
    queries: list[str] = []
    run_db = inbound.run_db

    def counting(func, /, *args, **kwargs):
        def measured(*a, **k):
            with CaptureQueriesContext(connection) as captured:
                result = func(*a, **k)
            queries.extend(q["sql"] for q in captured.captured_queries)
            return result

        return run_db(measured, *args, **kwargs)

    monkeypatch.setattr(inbound, "run_db", counting)
    await send(first, {"type": "read", "topic": news, "seq": 2})
    assert await receive(second) == {"type": "read", "topic": news, "seq": 2}
    assert len(queries) == 1, queries


# --- receipts to senders (SPEC §9) ---------------------------------------------------


async def test_senders_get_receipts_for_the_messages_read(open_ws):
    alice, bob, carol = (fresh_user_id("r") for _ in range(3))
    bobs = await apush_n(2, user_id=alice, sender=bob)
    carols = await apush_n(1, user_id=alice, sender=carol)
    await apush_n(1, user_id=alice, sender=None)
    reader, _ = await open_ws(alice)
    bob_ws, _ = await open_ws(bob)
    carol_ws, _ = await open_ws(carol)
    await send(reader, {"type": "read", "seq": 2})
    assert await receive(bob_ws) == {
        "type": "receipt",
        "user_id": alice,
        "message_ids": bobs,
        "seq": 2,
    }
    await assert_quiet(carol_ws)
    await send(reader, {"type": "read", "seq": 4})
    assert await receive(carol_ws) == {
        "type": "receipt",
        "user_id": alice,
        "message_ids": carols,
        "seq": 4,
    }
    await assert_quiet(bob_ws)
    await assert_quiet(reader)


async def test_a_topic_without_receipts_sends_none(open_ws):
    alice, bob = fresh_user_id("r"), fresh_user_id("r")
    news = fresh_topic("news")
    await database_sync_to_async(topics.member_add)(topic=news, user_id=alice)
    await apush_n(2, topic=news, sender=bob)
    reader, _ = await open_ws(alice)
    bob_ws, _ = await open_ws(bob)
    await subscribe(bob_ws, news)
    await send(reader, {"type": "read", "topic": news, "seq": 2})
    await assert_quiet(reader)
    await assert_quiet(bob_ws)


async def test_a_members_read_gives_subscribers_a_topic_receipt(open_ws):
    alice, bob, carol = (fresh_user_id("r") for _ in range(3))
    loud = fresh_topic("loud")
    await database_sync_to_async(topics.member_add)(topic=loud, user_id=alice)
    await apush_n(3, topic=loud, sender=bob)
    reader, _ = await open_ws(alice)
    await subscribe(reader, loud)
    bob_ws, _ = await open_ws(bob)
    await subscribe(bob_ws, loud)
    carol_ws, _ = await open_ws(carol)  # not subscribed
    await send(reader, {"type": "read", "topic": loud, "seq": 2})
    assert await receive(bob_ws) == {
        "type": "receipt",
        "topic": loud,
        "user_id": alice,
        "seq": 2,
    }
    await assert_quiet(reader)  # the reading connection gets no copy
    await assert_quiet(carol_ws)
    # A non-member's read moves its position but sends no receipt.
    await send(carol_ws, {"type": "read", "topic": loud, "seq": 3})
    await assert_quiet(carol_ws)  # the read is done
    await assert_quiet(bob_ws)
    assert await database_sync_to_async(reading.unread)(carol, loud) == 0


def test_receipts_list_each_senders_messages_once_in_order():
    alice = fresh_user_id("r")
    bob = fresh_user_id("r")
    first = push_n(2, user_id=alice, sender=bob)
    push_n(1, user_id=alice, sender=alice)  # her own: no receipt
    later = push_n(1, user_id=alice, sender=bob)
    moved, receipts = reading.read_personal(alice, 4)
    assert moved == 4
    assert receipts == [reading.Receipt(bob, first + later)]
    assert reading.read_personal(alice, 4) == (None, [])


def _commands(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
    }


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    changed = {
        name: calls - before.get(name, 0)
        for name, calls in after.items()
        if calls != before.get(name, 0)
    }
    changed.pop("info", None)
    return changed
