"""`bridge_client.Client` against a real daphne (open mode, one-second heartbeat):
resume of topics and the personal stream, handlers that raise or are slow, a
full handler queue, acks, streams, signals and reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_client import (
    PERSONAL,
    Backoff,
    BridgeHTTP,
    Client,
    FrameRefused,
    Message,
    Positions,
    StreamPart,
    Subscription,
    push_body,
)
from bridge_project.embedded_redis import EmbeddedRedis
from tests.clients.conftest import SERVER_ENV
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.polling import eventually
from tests.support.ws import connect_user, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    # A client that stops answering pings is closed within 3-4 s (4408).
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("realtime"),
        1,
        database=migrated_sqlite,
        BRIDGE_HEARTBEAT_TIMEOUT="3",
        **SERVER_ENV,
    ) as (process,):
        yield process


def texts(messages: list[Message]) -> list[str | None]:
    return [m.text for m in messages]


async def test_after_a_reconnect_the_personal_stream_and_two_topics_resume(
    server, clients
):
    user = fresh_user_id("resume")
    topics = [f"room:{fresh_user_id('t')}" for _ in range(2)]
    # At least 2 s between the drop and the next attempt: what is pushed in
    # between can only arrive by resume.
    client = clients(server.ws, user_id=user, backoff=Backoff(minimum=2, maximum=2.5))
    got: list[Message] = []
    client.on("message", got.append)
    resubscribed: list[Subscription] = []
    client.on("subscribed", lambda s: resubscribed.append(Subscription(**vars(s))))
    await client.connect()
    for topic in topics:
        await client.subscribe(topic)
    http = BridgeHTTP(server.http)
    targets = [{"user_id": user}, *({"topic": t} for t in topics)]
    for target in targets:
        http.push(message="before", **target)
    await eventually(lambda: _count(got, 3), within=5)

    assert http.disconnect(user)["closed"] == 1
    await eventually(lambda: _not_connected(client), within=5)
    for n in range(3):
        for target in targets:
            http.push(message=f"missed {n}", **target)
    await eventually(lambda: _count(got, 12), within=10)
    await asyncio.sleep(0.5)  # a duplicate would show up now

    by_stream: dict[str, list[Message]] = {}
    for message in got:
        by_stream.setdefault(message.stream, []).append(message)
    assert sorted(by_stream) == sorted([PERSONAL, *topics])
    for stream, messages in by_stream.items():
        assert [m.seq for m in messages] == [1, 2, 3, 4], stream
        assert texts(messages) == ["before", "missed 0", "missed 1", "missed 2"]
    assert client.reconnects == 1
    # Both topics were subscribed again from their last seq, and recovered.
    again = resubscribed[2:]
    assert sorted(s.topic for s in again) == sorted(topics)
    assert all(s.recovered for s in again)
    assert client.positions == Positions(4, dict.fromkeys(topics, 4))
    http.close()


async def test_saved_positions_resume_a_new_client_where_the_old_one_stopped(
    server, clients
):
    user = fresh_user_id("restart")
    topic = f"room:{fresh_user_id('t')}"
    first = clients(server.ws, user_id=user)
    got: list[Message] = []
    first.on("message", got.append)
    await first.connect()
    await first.subscribe(topic)
    http = BridgeHTTP(server.http)
    http.push(user_id=user, message="one")
    http.push(topic=topic, message="one")
    await eventually(lambda: _count(got, 2), within=5)
    saved = first.positions.to_dict()
    await first.close()
    http.push(user_id=user, message="two")
    http.push(topic=topic, message="two")

    second = clients(server.ws, user_id=user, positions=Positions.from_dict(saved))
    again: list[Message] = []
    second.on("message", again.append)
    await second.connect()
    await second.subscribe(topic)
    await eventually(lambda: _count(again, 2), within=5)
    await asyncio.sleep(0.3)
    assert sorted((m.stream, m.seq, m.text) for m in again) == sorted(
        [(PERSONAL, 2, "two"), (topic, 2, "two")]
    )
    http.close()


async def test_a_resume_past_what_is_kept_is_reported_to_the_application(
    server, clients
):
    topic = f"room:{fresh_user_id('gone')}"
    http = BridgeHTTP(server.http)
    http.push(topic=topic, message="kept?")
    # The reset deleted seq 1: a subscribe from 0 cannot be recovered.
    assert http.reset_topic(topic) == {"deleted": 1}
    client = clients(server.ws, user_id=fresh_user_id("gone"))
    reports: list[Subscription] = []
    client.on("subscribed", reports.append)
    await client.connect()
    subscription = await client.subscribe(topic, since=0)
    assert subscription.recovered is False
    await eventually(lambda: _count(reports, 1), within=5)
    http.close()


async def test_a_topic_handler_gets_its_topic_and_unsubscribe_ends_it(server, clients):
    user = fresh_user_id("handlers")
    room, other = (f"room:{fresh_user_id(n)}" for n in ("a", "b"))
    client = clients(server.ws, user_id=user)
    everything: list[Message] = []
    in_room: list[Message] = []
    client.on("message", everything.append)
    await client.connect()
    await client.subscribe(room, in_room.append)
    await client.subscribe(other)
    http = BridgeHTTP(server.http)
    http.push(topic=room, message="room")
    http.push(topic=other, message="other")
    http.push(user_id=user, message="personal")
    await eventually(lambda: _count(everything, 2), within=5)
    await eventually(lambda: _count(in_room, 1), within=5)
    assert texts(in_room) == ["room"]
    assert sorted(texts(everything)) == ["other", "personal"]

    await client.unsubscribe(room)
    http.push(topic=room, message="gone")
    http.push(user_id=user, message="still")
    await eventually(lambda: _count(everything, 3), within=5)
    await asyncio.sleep(0.3)
    assert texts(in_room) == ["room"] and texts(everything)[-1] == "still"
    http.close()


async def test_a_raising_handler_does_not_stop_the_next_messages(server, clients):
    user = fresh_user_id("raise")
    client = clients(server.ws, user_id=user)
    handled: list[int | None] = []

    def fragile(message: Message) -> None:
        handled.append(message.seq)
        if message.seq == 1:
            raise RuntimeError("a bug in the application")

    client.on("message", fragile)
    await client.connect()
    http = BridgeHTTP(server.http)
    for n in range(3):
        http.push(user_id=user, message=str(n))
    await eventually(lambda: _count(handled, 3), within=5)
    assert handled == [1, 2, 3]
    assert client._dispatcher.handler_errors == 1
    assert client.positions.personal == 3
    assert client.reconnects == 0

    def acked() -> None:  # sent after a ping, recorded at the next beat
        (connection,) = http.connections(user)["connections"]
        assert connection["acked_seq"] == 3

    await eventually(acked, within=5)
    http.close()


async def test_a_slow_handler_does_not_stop_the_read_loop_answering_pings(
    server, clients
):
    """The server closes a client that sends nothing for 3 s (4408, checked at
    each 1 s beat); a handler busy for 4.5 s must not make the client look dead."""
    user = fresh_user_id("slow")
    client = clients(server.ws, user_id=user)
    handled: list[tuple[int | None, float]] = []

    async def slow(message: Message) -> None:
        if message.seq == 1:
            await asyncio.sleep(4.5)
        handled.append((message.seq, time.monotonic()))

    client.on("message", slow)
    await client.connect()
    connection = client.connection_id
    http = BridgeHTTP(server.http)
    for n in range(3):
        http.push(user_id=user, message=str(n))
    await eventually(lambda: _count(handled, 3), within=10)
    assert [seq for seq, _ in handled] == [1, 2, 3]
    assert client.reconnects == 0
    assert client.connection_id == connection
    assert client.connected
    http.close()


async def test_a_full_handler_queue_resumes_instead_of_losing_messages(server, clients):
    user = fresh_user_id("full")
    client = clients(server.ws, user_id=user, queue_size=10)
    handled: list[int | None] = []

    async def slowish(message: Message) -> None:
        await asyncio.sleep(0.01)
        handled.append(message.seq)

    client.on("message", slowish)
    await client.connect()
    http = BridgeHTTP(server.http)
    http.batch([push_body(user_id=user, message=str(n)) for n in range(200)])
    await eventually(lambda: _count(handled, 200), within=20)
    await asyncio.sleep(0.3)
    assert handled == list(range(1, 201))
    assert client.stats["overflows"] >= 1
    assert client.reconnects >= 1
    http.close()


async def test_send_message_returns_its_ack_and_a_refusal_raises(server, clients):
    user = fresh_user_id("sender")
    client = clients(server.ws, user_id=user)
    bot = clients(server.ws, user_id="echo_bot")
    to_bot: list[Message] = []
    bot.on("message", lambda m: to_bot.append(m) if m.sender == user else None)
    await client.connect()
    await bot.connect()

    ack = await client.send_message("hello @echo_bot")
    assert ack["recipients"] == ["echo_bot"]
    await eventually(lambda: _count(to_bot, 1), within=5)
    assert to_bot[0].id == ack["id"] and to_bot[0].mentions == ["echo_bot"]
    with pytest.raises(FrameRefused) as refused:
        await client.send_message("nobody here")
    assert refused.value.code == "no_recipient"
    with pytest.raises(FrameRefused) as refused:
        await client.send_message("hi", to=fresh_user_id("other"))
    assert refused.value.code == "forbidden"


async def test_a_streamed_reply_arrives_in_parts_then_whole(server, clients):
    user = fresh_user_id("listener")
    client = clients(server.ws, user_id=user)
    bot = clients(server.ws, user_id="echo_bot")
    parts: list[StreamPart] = []
    messages: list[Message] = []
    client.on("stream", parts.append)
    client.on("message", messages.append)
    await client.connect()
    await bot.connect()

    async def words():
        for word in ["streamed ", "word ", "by ", "word"]:
            yield word

    ack = await bot.send_stream(words(), to=user, data={"model": "echo"})
    await eventually(lambda: _count(messages, 1), within=5)
    assert [p.delta for p in parts] == ["streamed ", "word ", "by ", "word"]
    assert [p.index for p in parts] == [0, 1, 2, 3]
    (message,) = messages
    assert message.id == ack["id"] == parts[0].id
    assert message.data == {"model": "echo", "text": "streamed word by word"}
    assert message.stream_id == parts[0].stream_id

    # The same stream id again: the server refuses it, and the next part raises.
    async with bot.stream(to=user, stream_id=parts[0].stream_id) as again:
        await again.send("more")
        with pytest.raises(FrameRefused) as refused:
            await eventually(lambda: _raises_on_send(again), within=5)
    assert refused.value.code == "stream_closed"


async def _raises_on_send(stream) -> None:
    await stream.send("x")
    raise AssertionError("not refused yet")


async def test_signals_and_reads_reach_the_other_side(server, clients):
    topic = f"room:{fresh_user_id('sig')}"
    user = fresh_user_id("reader")
    alice = clients(server.ws, user_id=user)
    bob = clients(server.ws, user_id=fresh_user_id("bob"))
    signals: list[dict] = []
    bob.on("signal", signals.append)
    await alice.connect()
    await bob.connect()
    await alice.subscribe(topic)
    await bob.subscribe(topic)
    await alice.signal("typing", topic=topic, data={"typing": True})
    await eventually(lambda: _count(signals, 1), within=5)
    assert signals[0]["from"] == user and signals[0]["data"] == {"typing": True}

    # A read on one connection is told to the user's other connection.
    other, _ = await connect_user(server.ws, user)
    http = BridgeHTTP(server.http)
    http.push(user_id=user, message="read me")
    await receive_messages(other, 1)
    await alice.read(1)
    frame = await other.receive_type("read")
    assert frame["seq"] == 1
    await other.close()
    http.close()


def _count(items: list, n: int) -> None:
    assert len(items) >= n, f"{len(items)} of {n}"


def _not_connected(client: Client) -> None:
    assert not client.connected
