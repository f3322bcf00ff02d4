"""Live conversations from outside (SPEC §9): signals, read positions,
receipts, unread counts (after pushes, reads, a purge and a topic reset),
history for users, and who may recall, through two real daphne processes
sharing a real Redis, in open mode and in token mode (the tests taking `side`
run in both).

No sleeps: where a test shows that something did *not* arrive, it sends a
sentinel afterwards on the same path (a push to the same group, a later read)
and asserts that the sentinel is the next frame.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.credentials import django_shell, mint_token, token_mode_env
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.server_db import manage
from tests.support.ws import Client, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

# Low, so that flooding shows within a test; each test's users are fresh, and
# no other test sends more than SIGNALS_PER_MINUTE signals as one user.
SIGNALS_PER_MINUTE = 5
BOT = "live_bot"
NAMESPACES = {
    # Members only, members publish, members' reads are announced.
    "room": {"subscribe": "members", "client_publish": "members", "receipts": True},
    # Anyone subscribes, subscribers publish, no receipts.
    "chat": {"subscribe": "public", "client_publish": "subscribers"},
    # Members only, two messages kept per topic (purge_messages).
    "keep": {"subscribe": "members", "history_size": 2},
}
KEYS = """
import json
from accounts.keys import api_key_create
from accounts.models import PublicAccount
print(json.dumps({
    "ops": api_key_create(name="ops", service="ops", permissions={"ops"}).raw,
    "push": api_key_create(name="push", service="ci", permissions={"push"}).raw,
    "other_push": api_key_create(
        name="other", service="deploys", permissions={"push"}
    ).raw,
    "sender": api_key_create(
        name="crm", service="crm", permissions={"push", "sender"}
    ).raw,
    "bot": api_key_create(
        name="bot", account=PublicAccount.objects.get(handle="live_bot")
    ).raw,
    "ci_bot": api_key_create(
        name="ci", account=PublicAccount.objects.get(handle="ci_bot")
    ).raw,
}))
"""


@dataclass
class Side:
    """One cluster (A, B) in one authentication mode, and how to talk to it."""

    mode: str
    a: DaphneProcess
    b: DaphneProcess
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, key: str = "ops") -> dict[str, str]:
        """An API key's header in token mode; open mode needs none."""
        if self.mode == "open":
            return {}
        return {"Authorization": f"Bearer {self.keys[key]}"}

    def user_headers(self, user: str) -> dict[str, str]:
        """A user's WebSocket token as an HTTP bearer (token mode only)."""
        assert self.mode == "token"
        return {"Authorization": f"Bearer {mint_token(user)}"}

    async def connect(
        self, server: DaphneProcess, user: str, **query: Any
    ) -> tuple[Client, dict]:
        if self.mode == "token":
            query["token"] = mint_token(user)
        else:
            query["user_id"] = user
        client = await Client.connect(f"{server.ws}/ws?{urlencode(query)}")
        connected = await client.receive()
        assert connected["type"] == "connected", connected
        return client, connected


def _cluster(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, workdir: Path, **env: str
) -> AbstractContextManager[list[DaphneProcess]]:
    """Two daphne processes with this module's namespaces, bot and limits."""
    return running_daphnes(
        redis_server.url,
        workdir,
        2,
        database=migrated_sqlite,
        BRIDGE_TOPIC_NAMESPACES=json.dumps(NAMESPACES),
        BRIDGE_CLIENT_SIGNALS_PER_MINUTE=str(SIGNALS_PER_MINUTE),
        PUBLIC_ACCOUNTS=BOT,
        **env,
    )


@pytest.fixture(scope="module")
def token_side(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path_factory
) -> Iterator[Side]:
    workdir = tmp_path_factory.mktemp("live-token")
    with _cluster(redis_server, migrated_sqlite, workdir, **token_mode_env()) as (
        a,
        b,
    ):
        yield Side("token", a, b, django_shell(a.env, KEYS))


@pytest.fixture(scope="module")
def open_side(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path_factory
) -> Iterator[Side]:
    workdir = tmp_path_factory.mktemp("live-open")
    with _cluster(redis_server, migrated_sqlite, workdir) as (a, b):
        yield Side("open", a, b)


@pytest.fixture(params=["open", "token"])
def side(request: pytest.FixtureRequest) -> Side:
    """The tests whose behaviour is the same in both modes run in both."""
    return request.getfixturevalue(f"{request.param}_side")


def topic(namespace: str) -> str:
    return f"{namespace}:{fresh_user_id('t')}"


async def subscribe(client: Client, name: str) -> dict:
    await client.send({"type": "subscribe", "topic": name, "ref": "s"})
    return await client.receive_type("subscribed")


async def add_member(http: httpx.AsyncClient, side: Side, name: str, user: str):
    reply = await http.put(
        f"{side.a.http}/api/topics/{name}/members/{user}", headers=side.headers()
    )
    assert reply.status_code == 200, reply.text


async def push(
    http: httpx.AsyncClient, side: Side, server: DaphneProcess, **body: Any
) -> dict:
    reply = await http.post(
        f"{server.http}/sse/push", json=body, headers=side.headers("push")
    )
    assert reply.status_code == 202, reply.text
    return reply.json()


async def get_json(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any
) -> dict:
    reply = await http.get(url, params=params, headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def bot_message(bot: Client, to: str, text: str) -> str:
    """The bot messages `to` (a bot may address anyone); the message id."""
    await bot.send({"type": "message", "to": to, "text": text, "ref": text})
    ack = await bot.receive_type("ack")
    assert (ack["ref"], ack["recipients"]) == (text, [to]), ack
    return ack["id"]


# --- Signals -----------------------------------------------------------------


async def test_a_topic_signal_reaches_subscribers_on_the_other_instance_only(
    side: Side, http, sockets
):
    room = topic("chat")
    ann, bob = fresh_user_id("ann"), fresh_user_id("bob")
    sender, _ = await side.connect(side.a, ann)
    own_other, _ = await side.connect(side.b, ann)
    watcher, _ = await side.connect(side.b, bob)
    sockets += [sender, own_other, watcher]
    for client in (sender, own_other, watcher):
        assert (await subscribe(client, room))["type"] == "subscribed"

    await sender.send(
        {
            "type": "signal",
            "event": "typing",
            "topic": room,
            "data": {"state": "started"},
            "ref": "t1",
        }
    )
    for client in (watcher, own_other):
        signal = await client.receive_type("signal")
        stamp = signal.pop("timestamp")
        assert signal == {
            "type": "signal",
            "event": "typing",
            "data": {"state": "started"},
            "from": ann,
            "topic": room,
        }
        assert stamp.endswith("Z") and len(stamp) == len("2026-11-22T10:00:00.000Z")

    # The sending connection gets no copy, and no ack: the next frame it sees
    # is a later push to the topic.
    pushed = await push(http, side, side.b, topic=room, data="after")
    (message,) = await receive_messages(sender, 1)
    assert message["id"] == pushed["id"]
    # Never stored: the topic's history holds only the push.
    history = await get_json(
        http, f"{side.a.http}/api/topics/{room}/messages", side.headers()
    )
    assert [m["id"] for m in history["messages"]] == [pushed["id"]]


async def test_a_signal_to_a_bot_reaches_it_on_the_other_instance_and_is_not_kept(
    side: Side, http, sockets
):
    ann = fresh_user_id("ann")
    sender, _ = await side.connect(side.a, ann)
    bot, _ = await side.connect(side.b, BOT)
    sockets += [sender, bot]

    await sender.send({"type": "signal", "event": "typing", "to": BOT})
    signal = await bot.receive_type("signal")
    assert (signal["from"], signal["to"], signal["event"], signal["data"]) == (
        ann,
        BOT,
        "typing",
        None,
    )
    assert "seq" not in signal and "id" not in signal

    # The bot may signal back to anyone; an ordinary user may not signal an
    # ordinary user.
    await bot.send({"type": "signal", "event": "typing", "to": ann, "data": {"n": 1}})
    back = await sender.receive_type("signal")
    assert (back["from"], back["to"], back["data"]) == (BOT, ann, {"n": 1})
    await sender.send(
        {"type": "signal", "event": "typing", "to": fresh_user_id(), "ref": "x"}
    )
    refused = await sender.receive_type("error")
    assert (refused["code"], refused["ref"]) == ("forbidden", "x")

    for user in (BOT, ann):
        history = await get_json(
            http, f"{side.b.http}/api/users/{user}/messages", side.headers()
        )
        assert [m for m in history["messages"] if m["from"] in (ann, BOT)] == []


async def test_refused_signals_answer_with_their_code_and_reach_nobody(
    side: Side, http, sockets
):
    room, ann = topic("chat"), fresh_user_id("ann")
    sender, _ = await side.connect(side.a, ann)
    watcher, _ = await side.connect(side.b, fresh_user_id("w"))
    bot, _ = await side.connect(side.b, BOT)
    sockets += [sender, watcher, bot]
    await subscribe(watcher, room)

    refusals = [
        # `client_publish: subscribers`, and this connection is not one.
        ({"topic": room}, "forbidden"),
        ({"topic": "nope:x"}, "not_found"),
        ({"topic": room, "to": BOT}, "invalid_frame"),
        ({"to": ann}, "no_recipient"),
        ({"to": BOT, "data": {"text": "x" * 4096}}, "too_large"),
        ({"to": BOT, "data": "not an object"}, "invalid_frame"),
    ]
    for n, (fields, code) in enumerate(refusals):
        await sender.send(
            {"type": "signal", "event": "typing", "ref": f"r{n}", **fields}
        )
        refused = await sender.receive_type("error")
        assert (refused["code"], refused["ref"]) == (code, f"r{n}"), fields
    # A bot's handle in any case reaches the bot, named canonically.
    await sender.send({"type": "signal", "event": "typing", "to": BOT.upper()})
    assert (await bot.receive_type("signal"))["to"] == BOT
    # Nothing refused went anywhere: the watcher's next frame is a push.
    pushed = await push(http, side, side.a, topic=room, data="after")
    assert (await receive_messages(watcher, 1))[0]["id"] == pushed["id"]


async def test_signal_flooding_is_limited_per_user_across_reconnects_and_instances(
    token_side: Side, sockets
):
    side = token_side
    room, ann = topic("chat"), fresh_user_id("ann")
    watcher, _ = await side.connect(side.a, fresh_user_id("w"))
    sockets.append(watcher)
    await subscribe(watcher, room)

    async def send_signals(client: Client, count: int) -> None:
        for n in range(count):
            await client.send(
                {"type": "signal", "event": "typing", "topic": room, "data": {"n": n}}
            )
        # Each one delivered: none was refused.
        for n in range(count):
            assert (await watcher.receive_type("signal"))["data"] == {"n": n}

    first, _ = await side.connect(side.a, ann)
    sockets.append(first)
    await subscribe(first, room)
    await send_signals(first, 3)
    await first.close()

    # A new connection, on the other instance, shares the user's budget.
    second, _ = await side.connect(side.b, ann)
    sockets.append(second)
    await subscribe(second, room)
    await send_signals(second, SIGNALS_PER_MINUTE - 3)
    await second.send({"type": "signal", "event": "typing", "topic": room, "ref": "x"})
    refused = await second.receive_type("error")
    assert (refused["code"], refused["ref"]) == ("rate_limited", "x")
    assert 0 < refused["retry_after_ms"] <= 60_000
    # The refused signal went nowhere: the watcher's next frame is a later push.
    async with httpx.AsyncClient(timeout=10) as http:
        pushed = await push(http, side, side.a, topic=room, data="after")
    (message,) = await receive_messages(watcher, 1)
    assert message["id"] == pushed["id"]


# --- Read positions, receipts, unread ----------------------------------------


async def test_a_personal_read_syncs_to_the_other_instance_and_only_moves_forward(
    side: Side, http, sockets
):
    ann = fresh_user_id("ann")
    for n in range(4):
        await push(http, side, side.a, user_id=ann, data={"n": n})
    reader, connected = await side.connect(side.a, ann)
    other, _ = await side.connect(side.b, ann)
    sockets += [reader, other]
    assert (connected["last_seq"], connected["read_seq"], connected["unread"]) == (
        4,
        0,
        4,
    )

    await reader.send({"type": "read", "seq": 3})
    assert await other.receive_type("read") == {"type": "read", "seq": 3}
    # Backwards and in place move nothing, and nobody hears of it; the next
    # sync the other connection gets is the next forward move, clamped to the
    # last seq there is.
    await reader.send({"type": "read", "seq": 2})
    await reader.send({"type": "read", "seq": 3})
    await reader.send({"type": "read", "seq": 99})
    assert await other.receive_type("read") == {"type": "read", "seq": 4}

    params = {"user_id": ann} if side.mode == "open" else {}
    headers = side.headers() if side.mode == "open" else side.user_headers(ann)
    mine = await get_json(http, f"{side.b.http}/api/me/unread", headers, **params)
    assert mine["personal"] == {"read_seq": 4, "unread": 0}
    # The reading connection is not told its own read.
    pushed = await push(http, side, side.b, user_id=ann, data="five")
    (message,) = await receive_messages(reader, 1)
    assert message["id"] == pushed["id"]


async def test_reading_a_bots_messages_sends_the_bot_a_receipt_on_the_other_instance(
    side: Side, http, sockets
):
    ann = fresh_user_id("ann")
    bot, _ = await side.connect(side.b, BOT)
    reader, _ = await side.connect(side.a, ann)
    sockets += [bot, reader]
    first = await bot_message(bot, ann, "one")
    anonymous = await push(http, side, side.a, user_id=ann, data="no sender")
    second = await bot_message(bot, ann, "two")
    got = await receive_messages(reader, 3)
    assert [m["id"] for m in got] == [first, anonymous["id"], second]
    assert [m["from"] for m in got] == [BOT, None, BOT]

    await reader.send({"type": "read", "seq": 3})
    assert await bot.receive_type("receipt") == {
        "type": "receipt",
        "user_id": ann,
        "message_ids": [first, second],
        "seq": 3,
    }
    # Reading the same messages again moves nothing and sends no receipt: the
    # bot's next receipt is for the next message only.
    third = await bot_message(bot, ann, "three")
    assert (await receive_messages(reader, 1))[0]["id"] == third
    await reader.send({"type": "read", "seq": 3})
    await reader.send({"type": "read", "seq": 4})
    receipt = await bot.receive_type("receipt")
    assert (receipt["message_ids"], receipt["seq"]) == ([third], 4)


async def test_each_sender_gets_a_receipt_for_its_own_messages_only(
    side: Side, http, sockets
):
    ann, bob = fresh_user_id("ann"), fresh_user_id("bob")
    room = topic("room")
    await add_member(http, side, room, bob)
    reader, _ = await side.connect(side.b, ann)
    sender, _ = await side.connect(side.a, bob)
    bot, _ = await side.connect(side.a, BOT)
    sockets += [reader, sender, bot]
    # A push naming bob as its sender (a key with `sender`), and a bot's message.
    reply = await http.post(
        f"{side.a.http}/sse/push",
        json={"user_id": ann, "sender": bob, "data": "from bob"},
        headers=side.headers("sender"),
    )
    assert reply.status_code == 202, reply.text
    from_bot = await bot_message(bot, ann, "from the bot")
    got = await receive_messages(reader, 2)
    assert [m["from"] for m in got] == [bob, BOT]

    await reader.send({"type": "read", "seq": 2})
    expected = {"type": "receipt", "user_id": ann, "seq": 2}
    assert await sender.receive_type("receipt") == {
        **expected,
        "message_ids": [reply.json()["id"]],
    }
    assert await bot.receive_type("receipt") == {**expected, "message_ids": [from_bot]}

    # A bot reads too: bob's mention of it in a topic made it a personal copy.
    await sender.send({"type": "message", "topic": room, "text": f"hi @{BOT}"})
    ack = await sender.receive_type("ack")
    assert ack["recipients"] == [BOT]
    copy = (await receive_messages(bot, 1))[0]
    assert (copy["id"], copy["from"], copy["topic"]) == (ack["id"], bob, room)
    await bot.send({"type": "read", "seq": copy["seq"]})
    assert await sender.receive_type("receipt") == {
        "type": "receipt",
        "user_id": BOT,
        "message_ids": [ack["id"]],
        "seq": copy["seq"],
    }


async def test_a_topic_read_syncs_with_its_topic_and_members_send_receipts(
    side: Side, http, sockets
):
    room = topic("room")
    ann, bob = fresh_user_id("ann"), fresh_user_id("bob")
    for user in (ann, bob):
        await add_member(http, side, room, user)
    for n in range(3):
        await push(http, side, side.a, topic=room, data={"n": n})
    reader, _ = await side.connect(side.a, ann)
    other, _ = await side.connect(side.b, ann)
    watcher, _ = await side.connect(side.b, bob)
    sockets += [reader, other, watcher]
    subscribed = await subscribe(reader, room)
    assert (subscribed["seq"], subscribed["read_seq"], subscribed["unread"]) == (
        3,
        0,
        3,
    )
    await subscribe(other, room)
    await subscribe(watcher, room)

    await reader.send({"type": "read", "topic": room, "seq": 2})
    assert await other.receive_type("read") == {"type": "read", "topic": room, "seq": 2}
    # `receipts: true`: every subscriber hears of a member's read (the
    # reader's other connection too, after its own sync).
    receipt = {"type": "receipt", "topic": room, "user_id": ann, "seq": 2}
    assert await watcher.receive_type("receipt") == receipt
    assert await other.receive_type("receipt") == receipt
    # Backwards and in place move nothing: frames from one connection are
    # handled in order, so the next receipt anyone gets is the forward move.
    for seq in (1, 2, 3):
        await reader.send({"type": "read", "topic": room, "seq": seq})
    assert await watcher.receive_type("receipt") == {**receipt, "seq": 3}
    assert await other.receive_type("read") == {"type": "read", "topic": room, "seq": 3}

    pushed = await push(http, side, side.b, topic=room, data="four")
    assert (await receive_messages(watcher, 1))[0]["id"] == pushed["id"]
    again = await subscribe(watcher, room)
    assert (again["seq"], again["read_seq"], again["unread"]) == (4, 0, 4)
    fresh, _ = await side.connect(side.b, ann)
    sockets.append(fresh)
    mine = await subscribe(fresh, room)
    assert (mine["read_seq"], mine["unread"]) == (3, 1)


async def test_a_topic_without_receipts_keeps_reads_to_the_reader(
    side: Side, http, sockets
):
    room = topic("chat")
    ann = fresh_user_id("ann")
    await push(http, side, side.a, topic=room, data=1)
    reader, _ = await side.connect(side.a, ann)
    other, _ = await side.connect(side.b, ann)
    watcher, _ = await side.connect(side.b, fresh_user_id("w"))
    sockets += [reader, other, watcher]
    for client in (reader, other, watcher):
        await subscribe(client, room)
    # Not a member of a public topic: no read_seq/unread in `subscribed`.
    assert "read_seq" not in await subscribe(watcher, room)

    await reader.send({"type": "read", "topic": room, "seq": 1})
    assert await other.receive_type("read") == {"type": "read", "topic": room, "seq": 1}
    pushed = await push(http, side, side.b, topic=room, data=2)
    for client in (watcher, other):
        (message,) = await receive_messages(client, 1)
        assert message["id"] == pushed["id"]


async def test_read_counts_follow_pushes_reads_and_a_purge_and_both_apis_agree(
    token_side: Side, http, sockets
):
    side = token_side
    ann = fresh_user_id("ann")
    kept = topic("keep")
    await add_member(http, side, kept, ann)
    for n in range(5):
        await push(http, side, side.a, user_id=ann, data={"n": n})
        await push(http, side, side.b, topic=kept, data={"n": n})

    async def counts() -> tuple[tuple[int, int], tuple[int, int]]:
        """(read_seq, unread) of the personal stream, then of the topic, as a
        new connection on B sees them; the unread APIs must agree."""
        client, connected = await side.connect(side.b, ann)
        subscribed = await subscribe(client, kept)
        await client.close()
        personal = (connected["read_seq"], connected["unread"])
        in_topic = (subscribed["read_seq"], subscribed["unread"])
        expected = {
            "personal": {"read_seq": personal[0], "unread": personal[1]},
            "topics": [{"topic": kept, "read_seq": in_topic[0], "unread": in_topic[1]}],
        }
        me = await get_json(
            http, f"{side.a.http}/api/me/unread", side.user_headers(ann)
        )
        ops = await get_json(
            http, f"{side.b.http}/api/users/{ann}/unread", side.headers()
        )
        assert me == ops == expected
        return personal, in_topic

    assert await counts() == ((0, 5), (0, 5))
    reader, _ = await side.connect(side.a, ann)
    sync, _ = await side.connect(side.b, ann)
    sockets += [reader, sync]
    await subscribe(reader, kept)
    await reader.send({"type": "read", "seq": 2})
    await reader.send({"type": "read", "topic": kept, "seq": 1})
    await reader.send({"type": "read", "seq": 3})
    # The reads are stored once the user's other connection hears of them.
    assert [await sync.receive_type("read") for _ in range(3)] == [
        {"type": "read", "seq": 2},
        {"type": "read", "topic": kept, "seq": 1},
        {"type": "read", "seq": 3},
    ]
    assert await counts() == ((3, 2), (1, 4))

    # Retention (an operator's cron) lowers unread, never the read position:
    # personal streams keep 1 message, the `keep` namespace 2.
    done = await asyncio.to_thread(
        manage, side.a.env, "purge_messages", "--max-per-user", "1"
    )
    assert done.returncode == 0, done.stderr
    assert await counts() == ((3, 1), (1, 2))


async def test_a_topic_reset_clears_unread_and_keeps_the_read_position(
    token_side: Side, http, sockets
):
    side = token_side
    room, ann = topic("room"), fresh_user_id("ann")
    await add_member(http, side, room, ann)
    for n in range(3):
        await push(http, side, side.a, topic=room, data=n)
    reader, _ = await side.connect(side.a, ann)
    sync, _ = await side.connect(side.b, ann)
    sockets += [reader, sync]
    await subscribe(reader, room)
    await reader.send({"type": "read", "topic": room, "seq": 2})
    assert (await sync.receive_type("read"))["seq"] == 2

    reset = await http.post(
        f"{side.b.http}/api/topics/{room}/reset", headers=side.headers()
    )
    assert reset.json() == {"deleted": 3}
    assert (await reader.receive_type("unsubscribed"))["reason"] == "reset"
    again = await subscribe(reader, room)
    assert (again["seq"], again["read_seq"], again["unread"]) == (3, 2, 0)
    # seq keeps counting; the read position stays where it was.
    pushed = await push(http, side, side.b, topic=room, data="new")
    assert pushed["seq"] == 4
    assert (await receive_messages(reader, 1))[0]["id"] == pushed["id"]
    unread = await get_json(
        http, f"{side.a.http}/api/me/unread", side.user_headers(ann)
    )
    assert unread["topics"] == [{"topic": room, "read_seq": 2, "unread": 1}]


async def test_refused_reads_answer_with_their_code_ref_and_topic(side: Side, sockets):
    ann = fresh_user_id("ann")
    client, _ = await side.connect(side.a, ann)
    sockets.append(client)
    room = topic("room")
    await client.send({"type": "read", "topic": room, "seq": 1, "ref": "r1"})
    refused = await client.receive_type("error")
    assert (refused["code"], refused["ref"], refused["topic"]) == (
        "forbidden",
        "r1",
        room,
    )
    await client.send({"type": "read", "topic": "nope:x", "seq": 1, "ref": "r2"})
    assert (await client.receive_type("error"))["code"] == "not_found"
    for n, seq in enumerate((-1, "3", 1.5, True, None, 2**63)):
        await client.send({"type": "read", "seq": seq, "ref": f"s{n}"})
        refused = await client.receive_type("error")
        assert (refused["code"], refused["ref"]) == ("invalid_frame", f"s{n}"), seq
    # The connection stays open and usable.
    await client.send({"type": "ping"})
    assert (await client.receive_type("pong"))["type"] == "pong"


# --- History for users, recall -----------------------------------------------


async def test_a_token_reads_only_its_own_personal_history(token_side: Side, http):
    side = token_side
    ann, bob = fresh_user_id("ann"), fresh_user_id("bob")
    for user in (ann, bob, ann):
        await push(http, side, side.a, user_id=user, data={"to": user})
    url = f"{side.b.http}/api/me/messages"

    mine = await get_json(http, url, side.user_headers(ann))
    assert [(m["seq"], m["to"], m["data"]) for m in mine["messages"]] == [
        (1, ann, {"to": ann}),
        (2, ann, {"to": ann}),
    ]
    assert mine["next_after_seq"] is None
    theirs = await get_json(http, url, side.user_headers(bob))
    assert [m["data"] for m in theirs["messages"]] == [{"to": bob}]

    naming_bob = await http.get(
        url, params={"user_id": bob}, headers=side.user_headers(ann)
    )
    assert naming_bob.status_code == 403, naming_bob.text
    assert naming_bob.json()["error"] == "permission_denied"
    anonymous = await http.get(url)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["error"] == "not_authenticated"
    bad_token = await http.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert bad_token.status_code == 401, bad_token.text


async def test_the_me_apis_need_a_user(side: Side, http):
    for path in ("messages", "unread"):
        reply = await http.get(f"{side.a.http}/api/me/{path}")
        if side.mode == "token":
            assert reply.status_code == 401, reply.text
            assert reply.json()["error"] == "not_authenticated"
            # A key is not a user, even an `ops` one.
            as_key = await http.get(
                f"{side.a.http}/api/me/{path}", headers=side.headers()
            )
            assert as_key.status_code == 403, as_key.text
            assert as_key.json()["error"] == "permission_denied"
        else:
            # Open mode trusts `user_id`, and needs it.
            assert reply.status_code == 400, reply.text
            assert "user_id" in reply.json()["detail"]


async def test_topic_history_with_a_user_token_pages_both_ways_where_it_may_subscribe(
    token_side: Side, http
):
    side = token_side
    ann = fresh_user_id("ann")
    public, members, granted = topic("chat"), topic("room"), topic("room")
    ids = [
        (await push(http, side, side.a, topic=public, data={"n": n}))["id"]
        for n in range(5)
    ]
    await push(http, side, side.a, topic=members, data="members only")
    await push(http, side, side.a, topic=granted, data="granted")
    token = {"Authorization": f"Bearer {mint_token(ann, topics=[granted])}"}

    def url(name: str) -> str:
        return f"{side.b.http}/api/topics/{name}/messages"

    page = await get_json(http, url(public), token, after_seq=1, limit=2)
    assert [m["id"] for m in page["messages"]] == ids[1:3]
    assert page["next_after_seq"] == 3
    page = await get_json(http, url(public), token, after_seq=3, limit=2)
    assert [m["seq"] for m in page["messages"]] == [4, 5]
    assert page["next_after_seq"] is None
    # Backwards, "load older messages": oldest first within a page.
    page = await get_json(http, url(public), token, before_seq=6, limit=2)
    assert [m["seq"] for m in page["messages"]] == [4, 5]
    assert page["next_before_seq"] == 4
    page = await get_json(http, url(public), token, before_seq=4, limit=3)
    assert [m["seq"] for m in page["messages"]] == [1, 2, 3]
    assert all(m["topic"] == public for m in page["messages"])
    assert page["next_before_seq"] is None
    over = await http.get(url(public), params={"limit": 101}, headers=token)
    assert over.status_code == 400 and over.json()["error"] == "invalid"

    granted_page = await get_json(http, url(granted), token)
    assert [m["data"] for m in granted_page["messages"]] == ["granted"]
    refused = await http.get(url(members), headers=token)
    assert refused.status_code == 403 and refused.json()["error"] == (
        "permission_denied"
    )
    unknown = await http.get(url("nope:x"), headers=token)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    # Membership admits, as it admits a subscription.
    await add_member(http, side, members, ann)
    member_page = await get_json(http, url(members), token)
    assert [m["data"] for m in member_page["messages"]] == ["members only"]


async def test_recalling_someone_elses_message_is_a_403_in_the_error_shape(
    token_side: Side, http
):
    side = token_side
    ann = fresh_user_id("ann")
    pushed = await push(http, side, side.a, user_id=ann, data="mine")
    url = f"{side.b.http}/api/messages/{pushed['id']}"

    foreign = await http.delete(url, headers=side.headers("other_push"))
    assert foreign.status_code == 403
    body = foreign.json()
    assert body["error"] == "permission_denied" and body["message"], body
    assert isinstance(body["detail"], dict)
    # A user token is not a key and recalls nothing.
    as_user = await http.delete(url, headers=side.user_headers(ann))
    assert as_user.status_code in (401, 403), as_user.text
    assert as_user.json()["error"] in ("not_authenticated", "permission_denied")
    history = await get_json(
        http, f"{side.a.http}/api/users/{ann}/messages", side.headers()
    )
    assert history["messages"][0]["data"] == "mine"
    # The key that pushed it may.
    own = await http.delete(url, headers=side.headers("push"))
    assert own.json() == {"id": pushed["id"], "recalled": True}


async def test_the_bot_that_sent_a_message_recalls_it_and_no_other_bot_may(
    token_side: Side, http, sockets
):
    side = token_side
    ann = fresh_user_id("ann")
    # A bot connects with one of its API keys as its token (SPEC §4).
    bot = await Client.connect(f"{side.b.ws}/ws?token={side.keys['bot']}")
    assert (await bot.receive())["user_id"] == BOT
    reader, _ = await side.connect(side.a, ann)
    sockets += [bot, reader]
    sent = await bot_message(bot, ann, "oops")
    assert (await receive_messages(reader, 1))[0]["id"] == sent
    url = f"{side.a.http}/api/messages/{sent}"

    other_bot = await http.delete(url, headers=side.headers("ci_bot"))
    assert other_bot.status_code == 403, other_bot.text
    assert other_bot.json()["error"] == "permission_denied"
    pusher = await http.delete(url, headers=side.headers("push"))
    assert pusher.status_code == 403, pusher.text
    own = await http.delete(url, headers=side.headers("bot"))
    assert own.json() == {"id": sent, "recalled": True}
    assert await reader.receive_type("recall") == {"type": "recall", "id": sent}
    (tombstone,) = (
        await get_json(http, f"{side.b.http}/api/me/messages", side.user_headers(ann))
    )["messages"]
    assert (tombstone["id"], tombstone["data"], tombstone["recalled"]) == (
        sent,
        None,
        True,
    )
