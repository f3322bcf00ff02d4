"""Delivery through real daphne processes: batches, concurrency, idleness, resume
(SPEC §2, §5, §6)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.ids import fresh_user_id
from tests.support.logs import assert_no_crash
from tests.support.ws import Client, assert_no_message, connect_user, receive_messages

pytestmark = pytest.mark.e2e


async def test_batch_arrives_at_each_user_in_request_order_with_consecutive_seqs(
    cluster,
):
    a, b = cluster
    users = [fresh_user_id(f"batch{n}") for n in range(10)]
    # Half the users listen on A, half on B; the batch is posted to A.
    clients = [
        (await connect_user((a if n % 2 else b).ws, user))[0]
        for n, user in enumerate(users)
    ]
    items = [{"user_id": users[n % 10], "data": {"n": n}} for n in range(100)]
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(f"{a.http}/sse/push/batch", json={"messages": items})
    assert reply.status_code == 202, reply.text
    results = reply.json()["results"]
    assert [r["recipients"][0]["user_id"] for r in results] == [
        item["user_id"] for item in items
    ]
    for n, (user, client) in enumerate(zip(users, clients, strict=True)):
        received = await receive_messages(client, 10)
        assert [f["data"]["n"] for f in received] == list(range(n, 100, 10))
        assert [f["seq"] for f in received] == list(range(1, 11))
        assert [f["id"] for f in received] == [r["id"] for r in results[n::10]]
        assert {f["to"] for f in received} == {user}
    await asyncio.gather(*(assert_no_message(c, wait=0.3) for c in clients))
    for client in clients:
        await client.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())


async def test_batch_with_one_bad_item_is_refused_and_sends_nothing(cluster):
    a, b = cluster
    users = [fresh_user_id(f"refused{n}") for n in range(3)]
    clients = [(await connect_user(b.ws, user))[0] for user in users]
    items = [{"user_id": users[n % 3], "message": f"m{n}"} for n in range(10)]
    items[7]["event"] = "Not An Event!"
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(f"{a.http}/sse/push/batch", json={"messages": items})
        assert reply.status_code == 400, reply.text
        body = reply.json()
        assert body["error"] == "invalid"
        assert set(body["detail"]["messages"]) == {"7"}
        assert "event" in body["detail"]["messages"]["7"]
        await asyncio.gather(*(assert_no_message(c, wait=1.0) for c in clients))
        # Nothing was stored either: the next push is each user's seq 1.
        for user, client in zip(users, clients, strict=True):
            ok = await http.post(
                f"{a.http}/sse/push", json={"user_id": user, "message": "after"}
            )
            assert ok.status_code == 202, ok.text
            frame = await client.receive_type("message")
            assert (frame["seq"], frame["data"]) == (1, {"text": "after"})
    for client in clients:
        await client.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())


async def test_concurrent_pushes_via_both_processes_arrive_gapless_in_seq_order(
    cluster,
):
    a, b = cluster
    carol = fresh_user_id("carol")
    on_a, _ = await connect_user(a.ws, carol)
    on_b, _ = await connect_user(b.ws, carol)
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        replies = await asyncio.gather(
            *(
                http.post(
                    f"{(a, b)[n % 2].http}/sse/push",
                    json={"user_id": carol, "data": {"n": n}},
                )
                for n in range(200)
            )
        )
    assert [r.status_code for r in replies] == [202] * 200
    seq_to_id = {r.json()["recipients"][0]["seq"]: r.json()["id"] for r in replies}
    assert sorted(seq_to_id) == list(range(1, 201))
    for client in (on_a, on_b):
        received = await receive_messages(client, 200)
        assert [f["seq"] for f in received] == list(range(1, 201))
        assert [f["id"] for f in received] == [seq_to_id[s] for s in range(1, 201)]
        await assert_no_message(client, wait=0.5)
    await on_a.close()
    await on_b.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())


async def test_idle_websocket_still_receives_pushes_after_17_seconds(cluster):
    a, b = cluster
    dave = fresh_user_id("dave")
    # No client frames at all, not even protocol-level pings: the subscriber
    # on B and both processes' Redis connections sit idle past redis-py's 5 s
    # socket timeout and the layer's 15 s health-check interval.
    client = await Client.connect(f"{b.ws}/ws?user_id={dave}", ping_interval=None)
    assert (await client.receive())["type"] == "connected"
    await assert_no_message(client, wait=17.0)
    async with httpx.AsyncClient(timeout=10) as http:
        via_a = await http.post(f"{a.http}/sse/push", json={"user_id": dave, "data": 1})
        via_b = await http.post(f"{b.http}/sse/push", json={"user_id": dave, "data": 2})
    assert (via_a.status_code, via_b.status_code) == (202, 202), via_a.text
    received = await receive_messages(client, 2, timeout=5)
    assert [(f["seq"], f["data"]) for f in received] == [(1, 1), (2, 2)]
    assert client.connection.close_code is None
    await client.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())


async def _push_three(base: str, user: str) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as http:
        ids = []
        for n in (1, 2, 3):
            reply = await http.post(
                f"{base}/sse/push", json={"user_id": user, "message": f"m{n}"}
            )
            assert reply.status_code == 202, reply.text
            assert reply.json()["recipients"][0]["online"] is False
            ids.append(reply.json()["id"])
        return ids


async def test_resume_from_zero_replays_stored_messages_then_live_ones(cluster):
    a, b = cluster
    erin = fresh_user_id("erin")
    ids = await _push_three(a.http, erin)
    client, connected = await connect_user(b.ws, erin, last_seq=0)
    assert connected["last_seq"] == 3
    replayed = await receive_messages(client, 3)
    assert [(f["seq"], f["id"]) for f in replayed] == list(
        zip((1, 2, 3), ids, strict=True)
    )
    assert [f["data"] for f in replayed] == [{"text": f"m{n}"} for n in (1, 2, 3)]
    async with httpx.AsyncClient(timeout=10) as http:
        live = await http.post(
            f"{a.http}/sse/push", json={"user_id": erin, "message": "live"}
        )
    assert live.status_code == 202, live.text
    frame = await client.receive_type("message")
    assert (frame["seq"], frame["id"], frame["data"]) == (
        4,
        live.json()["id"],
        {"text": "live"},
    )
    await assert_no_message(client, wait=0.5)
    await client.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())


async def test_resume_from_last_seq_sends_only_newer_messages(cluster):
    a, b = cluster
    frank = fresh_user_id("frank")
    ids = await _push_three(a.http, frank)
    client, connected = await connect_user(b.ws, frank, last_seq=2)
    assert connected["last_seq"] == 3
    frame = await client.receive_type("message")
    assert (frame["seq"], frame["id"]) == (3, ids[2])
    await assert_no_message(client, wait=1.0)
    await client.close()


async def test_connection_without_last_seq_gets_live_messages_only(cluster):
    a, b = cluster
    gina = fresh_user_id("gina")
    await _push_three(a.http, gina)
    client, connected = await connect_user(b.ws, gina)
    assert connected["last_seq"] == 3
    await assert_no_message(client, wait=0.5)
    await client.close()
