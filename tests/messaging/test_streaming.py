"""Streamed messages (SPEC §9) through /ws in process, against the real Redis
the suite starts: parsing every refusal, parts in index order, the stored
final message, the server finishing an idle stream, and each refusal of a
part (stream id reuse, part after final, too many open streams)."""

from __future__ import annotations

import json

import pytest

from messaging.frames import stream_part_frame, stream_part_template
from messaging.models import Message, StreamEntry
from messaging.realtime.client_frames import FrameError, parse_client_frame
from messaging.streams import streaming
from tests.messaging.test_consumer import (
    assert_still_open,
    ci_bot,  # noqa: F401  (fixture)
    connect,
    open_ws,  # noqa: F401  (fixture)
    receive,
    send,
)

# --- the frame around its holes ----------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"to": "alice", "topic": None, "delta": "Hel"},
        {"to": None, "topic": "room:1234567890123", "delta": '"\\u0000index" \x00'},
        {"to": "a1234567890123", "topic": None, "delta": ""},
    ],
)
def test_the_template_with_its_holes_filled_is_the_part_frame(fields):
    before_id, between, after_index = stream_part_template(
        stream_id="s:1234567890123", sender="ci_bot", **fields
    )
    message_id = "0b6c8a56-8d9e-4c1b-9f6e-2b1d0c7a4e11"
    text = before_id + message_id + between + "7" + after_index
    assert json.loads(text) == stream_part_frame(
        message_id=message_id,
        stream_id="s:1234567890123",
        sender="ci_bot",
        index=7,
        **fields,
    )


# --- parsing ---------------------------------------------------------------------


def parse(**fields) -> object:
    return parse_client_frame(json.dumps({"type": "stream", **fields}))


def test_a_part_parses():
    frame = parse(stream_id="s1", to="alice", delta="Hel", ref="r")
    assert (frame.stream_id, frame.to, frame.delta, frame.final, frame.ref) == (
        "s1",
        "alice",
        "Hel",
        False,
        "r",
    )


def test_a_final_part_may_omit_its_delta_and_carry_data():
    frame = parse(stream_id="s1", topic="room:1", final=True, data={"model": "m"})
    assert (frame.delta, frame.final, frame.data, frame.topic) == (
        "",
        True,
        {"model": "m"},
        "room:1",
    )


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to": "alice", "delta": "x"}, "invalid_frame"),  # no stream_id
        ({"stream_id": "", "to": "alice", "delta": "x"}, "invalid_frame"),
        ({"stream_id": "a b", "to": "alice", "delta": "x"}, "invalid_frame"),
        ({"stream_id": "s" * 65, "to": "alice", "delta": "x"}, "invalid_frame"),
        ({"stream_id": 7, "to": "alice", "delta": "x"}, "invalid_frame"),
        ({"stream_id": "s", "to": "alice"}, "invalid_frame"),  # no delta
        ({"stream_id": "s", "to": "alice", "delta": ""}, "invalid_frame"),
        ({"stream_id": "s", "to": "alice", "delta": 5}, "invalid_frame"),
        ({"stream_id": "s", "to": "alice", "delta": "x" * 4097}, "too_large"),
        ({"stream_id": "s", "to": "alice", "delta": "x", "final": 1}, "invalid_frame"),
        (
            {"stream_id": "s", "to": "alice", "delta": "x", "data": {"a": 1}},
            "invalid_frame",
        ),  # data only with final
        (
            {"stream_id": "s", "to": "alice", "final": True, "data": [1]},
            "invalid_frame",
        ),
        (
            {"stream_id": "s", "to": "a", "final": True, "data": {"a": "x" * 4096}},
            "too_large",
        ),
        ({"stream_id": "s", "delta": "x"}, "invalid_frame"),  # no target
        (
            {"stream_id": "s", "to": "a", "topic": "room:1", "delta": "x"},
            "invalid_frame",
        ),
        ({"stream_id": "s", "to": "not valid", "delta": "x"}, "invalid_frame"),
        ({"stream_id": "s", "topic": "nocolon", "delta": "x"}, "invalid_frame"),
    ],
)
def test_malformed_parts_are_refused_with_the_frames_ref(fields, code):
    with pytest.raises(FrameError) as refused:
        parse(ref="p", **fields)
    assert (refused.value.code, refused.value.ref) == (code, "p")


# --- through /ws -----------------------------------------------------------------


async def stream(bot, stream_id: str, parts: list[str], **fields) -> None:
    for delta in parts:
        await send(
            bot, {"type": "stream", "stream_id": stream_id, "delta": delta, **fields}
        )


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_bot_streams_to_a_user_in_order_then_one_stored_message(
    open_ws,  # noqa: F811
    ci_bot,  # noqa: F811
):
    alice, _ = await connect(open_ws, "user_id=alice")
    bot, _ = await connect(open_ws, "user_id=ci_bot")
    parts = [f"w{i} " for i in range(12)]

    await stream(bot, "s1", parts, to="alice")
    await send(
        bot,
        {
            "type": "stream",
            "stream_id": "s1",
            "to": "alice",
            "final": True,
            "delta": "end",
            "data": {"model": "m1", "text": "ignored"},
            "ref": "done",
        },
    )

    received = [await receive(alice) for _ in range(len(parts) + 2)]
    *live, message = received
    assert [p["index"] for p in live] == list(range(len(parts) + 1))
    assert [p["delta"] for p in live] == [*parts, "end"]
    assert {p["type"] for p in live} == {"stream"}
    assert {(p["stream_id"], p["from"], p["to"]) for p in live} == {
        ("s1", "ci_bot", "alice")
    }
    assert len({p["id"] for p in live}) == 1
    assert message["type"] == "message"
    assert message["id"] == live[0]["id"]
    assert message["seq"] == 1
    assert message["stream_id"] == "s1"
    assert "incomplete" not in message
    assert message["data"] == {"text": "".join(parts) + "end", "model": "m1"}
    assert (message["from"], message["to"], message["event"]) == (
        "ci_bot",
        "alice",
        "message",
    )
    ack = await receive(bot)
    assert (ack["type"], ack["ref"], ack["id"], ack["recipients"]) == (
        "ack",
        "done",
        message["id"],
        ["alice"],
    )
    stored = await Message.objects.aget(id=message["id"])
    assert (stored.stream_id, stored.incomplete) == ("s1", False)
    assert await StreamEntry.objects.filter(stream="user:alice").acount() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_part_after_the_final_one_is_refused(open_ws, ci_bot):  # noqa: F811
    bot, _ = await connect(open_ws, "user_id=ci_bot")
    await send(bot, {"type": "stream", "stream_id": "s2", "to": "bob", "delta": "a"})
    await send(bot, {"type": "stream", "stream_id": "s2", "to": "bob", "final": True})
    assert (await receive(bot))["type"] == "ack"

    await send(
        bot,
        {"type": "stream", "stream_id": "s2", "to": "bob", "delta": "b", "ref": "late"},
    )

    error = await receive(bot)
    assert (error["type"], error["code"], error["ref"]) == (
        "error",
        "stream_closed",
        "late",
    )
    await assert_still_open(bot)
    assert await Message.objects.acount() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_stream_id_open_to_someone_else_is_refused(open_ws, ci_bot):  # noqa: F811
    bot, _ = await connect(open_ws, "user_id=ci_bot")
    await send(bot, {"type": "stream", "stream_id": "s3", "to": "bob", "delta": "a"})

    await send(
        bot,
        {"type": "stream", "stream_id": "s3", "to": "carol", "delta": "b", "ref": "x"},
    )

    error = await receive(bot)
    assert (error["code"], error["ref"]) == ("stream_conflict", "x")


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_open_streams_are_bounded_per_connection(open_ws, ci_bot, settings):  # noqa: F811
    settings.BRIDGE_MAX_OPEN_STREAMS = 2
    bot, _ = await connect(open_ws, "user_id=ci_bot")
    for stream_id in ("a", "b"):
        await send(
            bot, {"type": "stream", "stream_id": stream_id, "to": "bob", "delta": "x"}
        )

    await send(
        bot, {"type": "stream", "stream_id": "c", "to": "bob", "delta": "x", "ref": "c"}
    )
    error = await receive(bot)
    assert (error["code"], error["ref"]) == ("too_many_streams", "c")

    # Finishing one makes room; another connection has its own budget.
    await send(bot, {"type": "stream", "stream_id": "a", "to": "bob", "final": True})
    assert (await receive(bot))["type"] == "ack"
    await send(bot, {"type": "stream", "stream_id": "c", "to": "bob", "delta": "x"})
    other, _ = await connect(open_ws, "user_id=ci_bot")
    await send(other, {"type": "stream", "stream_id": "d", "to": "bob", "delta": "x"})
    await assert_still_open(bot)
    await assert_still_open(other)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_stream_longer_than_a_message_is_refused(open_ws, ci_bot, settings):  # noqa: F811
    settings.BRIDGE_MAX_MESSAGE_BYTES = 10
    bot, _ = await connect(open_ws, "user_id=ci_bot")
    await send(bot, {"type": "stream", "stream_id": "s", "to": "bob", "delta": "é" * 5})

    await send(
        bot, {"type": "stream", "stream_id": "s", "to": "bob", "delta": "x", "ref": "l"}
    )

    error = await receive(bot)
    assert (error["code"], error["ref"]) == ("too_large", "l")


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_an_ordinary_user_may_not_stream_to_another(open_ws):  # noqa: F811
    alice, _ = await connect(open_ws, "user_id=alice")
    bob, _ = await connect(open_ws, "user_id=bob")

    await send(
        alice,
        {"type": "stream", "stream_id": "s", "to": "bob", "delta": "x", "ref": "f"},
    )

    error = await receive(alice)
    assert (error["code"], error["ref"]) == ("forbidden", "f")
    assert await bob.receive_nothing(timeout=0.3)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_an_idle_stream_is_finished_as_incomplete_by_the_sweeper(
    open_ws,  # noqa: F811
    ci_bot,  # noqa: F811
    settings,
):
    settings.BRIDGE_STREAM_IDLE_TIMEOUT = 0.2
    alice, _ = await connect(open_ws, "user_id=alice")
    bot, _ = await connect(open_ws, "user_id=ci_bot")
    await stream(bot, "idle", ["Hel", "lo"], to="alice")
    assert [(await receive(alice))["index"] for _ in range(2)] == [0, 1]

    # The process's sweeper (realtime/stream_sweeper.py) finishes it.
    message = await receive(alice)
    assert (message["type"], message["data"], message["incomplete"]) == (
        "message",
        {"text": "Hello"},
        True,
    )
    assert message["stream_id"] == "idle"
    await send(
        bot,
        {
            "type": "stream",
            "stream_id": "idle",
            "to": "alice",
            "delta": "!",
            "ref": "z",
        },
    )
    assert (await receive(bot))["code"] == "stream_closed"
    assert await streaming.finish_due_streams() == 0
    assert await Message.objects.acount() == 1
