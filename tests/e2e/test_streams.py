"""Streamed messages (SPEC §9) from outside: two real daphne processes, the
suite's real Redis, `websockets` and `httpx` clients; open mode, then token
mode with API keys."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.credentials import django_shell, mint_token, token_mode_env
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.ws import Client, assert_no_message, connect_user, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

NAMESPACES = {"room": {"subscribe": "public", "client_publish": "subscribers"}}
IDLE_SECONDS = 1.0


@pytest.fixture(scope="module")
def cluster(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path_factory
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("streams"),
        2,
        database=migrated_sqlite,
        BRIDGE_TOPIC_NAMESPACES=json.dumps(NAMESPACES),
        BRIDGE_STREAM_IDLE_TIMEOUT=str(IDLE_SECONDS),
    ) as (a, b):
        yield a, b


async def next_of(client: Client, frame_type: str, count: int) -> list[dict]:
    return [await client.receive_type(frame_type) for _ in range(count)]


def part(stream_id: str, delta: str, **fields) -> dict:
    return {"type": "stream", "stream_id": stream_id, "delta": delta, **fields}


async def test_fifty_parts_reach_a_user_on_the_other_instance_in_order(
    cluster, sockets
):
    a, b = cluster
    alice = fresh_user_id("alice")
    user, _ = await connect_user(b.ws, alice)
    bot, _ = await connect_user(a.ws, "ci_bot")
    sockets += [user, bot]
    deltas = [f"t{n} " for n in range(50)]

    for delta in deltas:
        await bot.send(part("answer", delta, to=alice))
    await bot.send(part("answer", "", to=alice, final=True, ref="end"))

    parts = await next_of(user, "stream", 50)
    assert [p["index"] for p in parts] == list(range(50))
    assert [p["delta"] for p in parts] == deltas
    (message,) = await receive_messages(user, 1)
    assert message["id"] == parts[0]["id"]
    assert (message["seq"], message["stream_id"], message["from"]) == (
        1,
        "answer",
        "ci_bot",
    )
    assert message["data"] == {"text": "".join(deltas)}
    ack = await bot.receive_type("ack")
    assert (ack["ref"], ack["id"], ack["recipients"]) == ("end", message["id"], [alice])


async def test_a_reconnect_in_the_middle_of_a_stream_gets_the_message_by_resume(
    cluster, sockets
):
    a, b = cluster
    alice = fresh_user_id("alice")
    user, connected = await connect_user(b.ws, alice)
    bot, _ = await connect_user(a.ws, "ci_bot")
    sockets.append(bot)
    for n in range(21):
        await bot.send(part("r", f"{n},", to=alice))
    parts = await next_of(user, "stream", 21)
    assert parts[-1]["index"] == 20
    await user.close()

    for n in range(21, 50):
        await bot.send(part("r", f"{n},", to=alice))
    await bot.send(part("r", "", to=alice, final=True))
    await bot.receive_type("ack")

    again, _ = await connect_user(a.ws, alice, last_seq=connected["last_seq"])
    sockets.append(again)
    (message,) = await receive_messages(again, 1)
    assert message["data"]["text"] == "".join(f"{n}," for n in range(50))
    assert (message["seq"], message["id"]) == (1, parts[0]["id"])
    await assert_no_message(again, 0.5)  # once: no parts replayed, no copy


async def test_http_parts_alternating_between_processes_arrive_in_index_order(
    cluster, sockets, http
):
    a, b = cluster
    alice = fresh_user_id("alice")
    user, _ = await connect_user(a.ws, alice)
    sockets.append(user)
    deltas = [f"<{n}>" for n in range(40)]

    async def send(n: int) -> dict:
        server = (a, b)[n % 2]
        reply = await http.post(
            f"{server.http}/sse/push",
            json={"user_id": alice, "stream_id": "h", "delta": deltas[n]},
        )
        assert reply.status_code == 202, reply.text
        return reply.json()

    # Concurrently: the order Redis takes them in decides the indexes.
    replies = await asyncio.gather(*(send(n) for n in range(40)))
    index_of = {deltas[n]: reply["index"] for n, reply in enumerate(replies)}
    assert sorted(index_of.values()) == list(range(40))
    final = await http.post(
        f"{b.http}/sse/push",
        json={"user_id": alice, "stream_id": "h", "final": True, "data": {"n": 40}},
    )
    assert final.status_code == 202, final.text

    parts = await next_of(user, "stream", 40)
    assert [p["index"] for p in parts] == list(range(40))
    assert all(index_of[p["delta"]] == p["index"] for p in parts)
    (message,) = await receive_messages(user, 1)
    assert message["data"] == {"text": "".join(p["delta"] for p in parts), "n": 40}
    assert final.json()["recipients"][0]["seq"] == message["seq"]


async def test_an_idle_stream_is_finished_incomplete_and_resume_shows_it(
    cluster, sockets
):
    a, b = cluster
    alice = fresh_user_id("alice")
    user, _ = await connect_user(a.ws, alice)
    bot, _ = await connect_user(b.ws, "ci_bot")
    sockets.append(user)
    await bot.send(part("idle", "half an ", to=alice))
    await bot.send(part("idle", "answer", to=alice))
    assert len(await next_of(user, "stream", 2)) == 2
    await bot.close()  # the sender is gone: some process must finish it

    (message,) = await receive_messages(user, 1, timeout=IDLE_SECONDS + 5)
    assert (message["data"], message["incomplete"], message["stream_id"]) == (
        {"text": "half an answer"},
        True,
        "idle",
    )
    resumed, _ = await connect_user(b.ws, alice, last_seq=0)
    sockets.append(resumed)
    (stored,) = await receive_messages(resumed, 1)
    assert stored == message


async def test_a_topic_stream_reaches_subscribers_on_both_instances_not_the_sender(
    cluster, sockets
):
    a, b = cluster
    topic = f"room:{fresh_user_id('t')}"
    writer, _ = await connect_user(a.ws, fresh_user_id("w"))
    readers = [
        (await connect_user(a.ws, fresh_user_id("r")))[0],
        (await connect_user(b.ws, fresh_user_id("r")))[0],
    ]
    sockets += [writer, *readers]
    for client in (writer, *readers):
        await client.send({"type": "subscribe", "topic": topic})
        await client.receive_type("subscribed")

    await writer.send(part("doc", "Hi ", topic=topic))
    await writer.send(part("doc", "all", topic=topic, final=True, ref="f"))

    for reader in readers:
        parts = await next_of(reader, "stream", 2)
        assert [(p["index"], p["topic"]) for p in parts] == [(0, topic), (1, topic)]
        (message,) = await receive_messages(reader, 1)
        assert (message["topic"], message["seq"], message["data"]) == (
            topic,
            1,
            {"text": "Hi all"},
        )
    ack = await writer.receive_type("ack")
    assert (ack["topic"], ack["seq"]) == (topic, 1)
    await assert_no_message(writer, 0.5)


async def test_stream_refusals_from_outside(cluster, sockets, http):
    a, b = cluster
    alice = fresh_user_id("alice")
    bot, _ = await connect_user(a.ws, "ci_bot")
    sockets.append(bot)
    await bot.send(part("x", "a", to=alice))
    await bot.send(part("x", "b", to=fresh_user_id("bob"), ref="conflict"))
    error = await bot.receive_type("error")
    assert (error["code"], error["ref"]) == ("stream_conflict", "conflict")
    await bot.send(part("x", "", to=alice, final=True))
    await bot.receive_type("ack")
    await bot.send(part("x", "c", to=alice, ref="late"))
    error = await bot.receive_type("error")
    assert (error["code"], error["ref"]) == ("stream_closed", "late")

    body = {"user_id": alice, "stream_id": "y", "final": True}
    assert (await http.post(f"{b.http}/sse/push", json=body)).status_code == 202
    again = await http.post(f"{a.http}/sse/push", json={**body, "delta": "more"})
    assert again.status_code == 409
    assert again.json()["error"] == "stream_closed"


# --- token mode ---------------------------------------------------------------

KEYS = """
import json
from accounts.keys import api_key_create
print(json.dumps({
    "push": api_key_create(name="push", service="ci", permissions={"push"}).raw,
}))
"""


@pytest.fixture(scope="module")
def token_cluster(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path_factory
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("streams-token"),
        2,
        database=migrated_sqlite,
        **token_mode_env(BRIDGE_MAX_OPEN_STREAMS="2"),
    ) as (a, b):
        yield a, b


async def test_token_mode_streams_over_http_and_websocket(token_cluster, sockets):
    a, b = token_cluster
    (push_key,) = django_shell(a.env, KEYS).values()
    alice = fresh_user_id("alice")
    user = await Client.connect(f"{b.ws}/ws?token={mint_token(alice)}")
    bot = await Client.connect(f"{a.ws}/ws?token={mint_token('ci_bot')}")
    sockets += [user, bot]
    for client in (user, bot):
        assert (await client.receive())["type"] == "connected"

    async with httpx.AsyncClient(
        timeout=10, headers={"Authorization": f"Bearer {push_key}"}
    ) as http:
        url = f"{a.http}/sse/push"
        named = await http.post(
            url, json={"user_id": alice, "stream_id": "s", "delta": "x", "sender": "x"}
        )
        assert (named.status_code, named.json()["error"]) == (403, "permission_denied")
        for stream_id in ("s1", "s2"):
            reply = await http.post(
                url, json={"user_id": alice, "stream_id": stream_id, "delta": "x"}
            )
            assert reply.status_code == 202, reply.text
        # The key's budget is shared by every process.
        third = await http.post(
            f"{b.http}/sse/push",
            json={"user_id": alice, "stream_id": "s3", "delta": "x"},
        )
        assert (third.status_code, third.json()["error"]) == (409, "too_many_streams")
    async with httpx.AsyncClient(timeout=10) as anonymous_client:
        anonymous = await anonymous_client.post(
            url, json={"user_id": alice, "stream_id": "s4", "delta": "x"}
        )
    assert anonymous.status_code == 401

    parts = await next_of(user, "stream", 2)
    assert {p["from"] for p in parts} == {None}  # a service key: anonymous
    await bot.send(part("w", "from the bot", to=alice))
    (live,) = await next_of(user, "stream", 1)
    assert (live["from"], live["index"]) == ("ci_bot", 0)
