"""Signals (SPEC §9): parsing every refusal, then routing through /ws in
process, like tests/messaging/test_consumer.py."""

from __future__ import annotations

import json

import pytest

from messaging.models import Message
from messaging.realtime.client_frames import (
    MAX_SIGNAL_DATA_BYTES,
    FrameError,
    parse_client_frame,
)
from messaging.streams import signals
from messaging.streams.publish import LayerUnavailable
from tests.messaging.test_consumer import (
    assert_still_open,
    ci_bot,  # noqa: F401  (fixture)
    connect,
    open_ws,  # noqa: F401  (fixture)
    receive,
    send,
)

# --- parsing ----------------------------------------------------------------------


def parse(**fields) -> object:
    return parse_client_frame(json.dumps({"type": "signal", **fields}))


def test_a_signal_to_a_user_parses():
    frame = parse(event="typing", to="ci_bot", data={"on": True}, ref="r")
    assert (frame.type, frame.event, frame.to, frame.topic) == (
        "signal",
        "typing",
        "ci_bot",
        None,
    )
    assert (frame.data, frame.ref) == ({"on": True}, "r")


def test_a_signal_to_a_topic_parses_without_data():
    frame = parse(event="typing.start", topic="room:42")
    assert (frame.topic, frame.to, frame.data) == ("room:42", None, None)


def test_data_of_exactly_the_limit_is_accepted():
    # {"k":"…"} serializes to 8 bytes plus the string.
    data = {"k": "x" * (MAX_SIGNAL_DATA_BYTES - 8)}
    assert parse(event="typing", to="ci_bot", data=data).data == data


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to": "ci_bot"}, "invalid_frame"),  # no event
        ({"event": "", "to": "ci_bot"}, "invalid_frame"),
        ({"event": "Typing", "to": "ci_bot"}, "invalid_frame"),
        ({"event": "typing\n", "to": "ci_bot"}, "invalid_frame"),
        ({"event": "t" * 65, "to": "ci_bot"}, "invalid_frame"),
        ({"event": 7, "to": "ci_bot"}, "invalid_frame"),
        ({"event": "typing"}, "invalid_frame"),  # neither to nor topic
        ({"event": "typing", "to": "ci_bot", "topic": "room:1"}, "invalid_frame"),
        ({"event": "typing", "to": "-bad"}, "invalid_frame"),
        ({"event": "typing", "to": 7}, "invalid_frame"),
        ({"event": "typing", "topic": "nocolon"}, "invalid_frame"),
        ({"event": "typing", "topic": "user:alice"}, "invalid_frame"),
        ({"event": "typing", "to": "ci_bot", "data": [1]}, "invalid_frame"),
        ({"event": "typing", "to": "ci_bot", "data": "x"}, "invalid_frame"),
        (
            {"event": "typing", "to": "ci_bot", "data": {"k": "x" * 4089}},
            "too_large",
        ),
        (
            {"event": "typing", "to": "ci_bot", "data": {"k": "é" * 2045}},
            "too_large",  # bytes, not characters
        ),
    ],
)
def test_malformed_signals_are_refused_with_the_frames_ref(fields, code):
    with pytest.raises(FrameError) as refused:
        parse(ref="r9", **fields)
    assert (refused.value.code, refused.value.ref) == (code, "r9")


# --- through /ws ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_signal_to_a_bot_reaches_the_bots_connections(open_ws, ci_bot):  # noqa: F811
    alice, _ = await connect(open_ws, "user_id=alice")
    bot, _ = await connect(open_ws, "user_id=ci_bot")

    await send(
        alice,
        {"type": "signal", "event": "typing", "to": "CI_Bot", "data": {"on": True}},
    )

    signal = await receive(bot)
    assert {k: v for k, v in signal.items() if k != "timestamp"} == {
        "type": "signal",
        "event": "typing",
        "data": {"on": True},
        "from": "alice",
        "to": "ci_bot",
    }
    assert await alice.receive_nothing(timeout=0.3)  # no ack, no copy
    assert not await Message.objects.aexists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_bot_may_signal_an_ordinary_user(open_ws, ci_bot):  # noqa: F811
    bob, _ = await connect(open_ws, "user_id=bob")
    bot, _ = await connect(open_ws, "user_id=ci_bot")

    await send(bot, {"type": "signal", "event": "typing", "to": "bob"})

    signal = await receive(bob)
    assert (signal["type"], signal["from"], signal["to"], signal["data"]) == (
        "signal",
        "ci_bot",
        "bob",
        None,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_signal_between_ordinary_users_is_forbidden(open_ws):  # noqa: F811
    alice, _ = await connect(open_ws, "user_id=alice")
    bob, _ = await connect(open_ws, "user_id=bob")

    await send(alice, {"type": "signal", "event": "typing", "to": "bob", "ref": "s1"})

    error = await receive(alice)
    assert (error["type"], error["code"], error["ref"]) == ("error", "forbidden", "s1")
    assert await bob.receive_nothing(timeout=0.3)
    await assert_still_open(alice)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_signal_to_an_unknown_namespace_is_not_found(open_ws):  # noqa: F811
    alice, _ = await connect(open_ws, "user_id=alice")

    await send(
        alice, {"type": "signal", "event": "typing", "topic": "nope:1", "ref": "s2"}
    )

    error = await receive(alice)
    assert (error["code"], error["ref"], error["topic"]) == (
        "not_found",
        "s2",
        "nope:1",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_the_signal_limit_counts_per_user_across_reconnects(
    open_ws,  # noqa: F811
    ci_bot,  # noqa: F811
    settings,
):
    settings.BRIDGE_CLIENT_SIGNALS_PER_MINUTE = 2
    frame = {"type": "signal", "event": "typing", "to": "ci_bot"}
    first, _ = await connect(open_ws, "user_id=alice")
    await send(first, frame)
    await send(first, frame)
    await assert_still_open(first)  # both admitted: no reply at all
    await first.disconnect()

    again, _ = await connect(open_ws, "user_id=alice")
    await send(again, {**frame, "ref": "s3"})

    error = await receive(again)
    assert (error["code"], error["ref"]) == ("rate_limited", "s3")
    assert error["retry_after_ms"] > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_signal_while_redis_is_down_is_unavailable(
    open_ws,  # noqa: F811
    ci_bot,  # noqa: F811
    monkeypatch,
):
    async def down(outgoing) -> None:
        raise LayerUnavailable("Redis is unreachable")

    alice, _ = await connect(open_ws, "user_id=alice")
    monkeypatch.setattr(signals, "publish", down)

    await send(alice, {"type": "signal", "event": "typing", "to": "ci_bot", "ref": "u"})

    error = await receive(alice)
    assert (error["code"], error["ref"]) == ("unavailable", "u")
