"""Resume and gap filling through real daphne processes (SPEC §2, §5): resuming
while pushes keep arriving, resuming past retention, and a live event that
never arrives."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.daphne import DaphneProcess
from tests.support.ids import fresh_user_id
from tests.support.ledger import LedgerClient
from tests.support.logs import assert_no_crash
from tests.support.server_db import manage, store_without_publishing
from tests.support.ws import assert_no_message, connect_user, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

PUSHERS = 3
PUSHES_EACH = 100
PUSH_INTERVAL = 0.03  # per pusher: about 100 pushes/s in all, for about 3 s
DELIVERY_DEADLINE = 10.0


async def _push(http: httpx.AsyncClient, server: DaphneProcess, user: str, data):
    reply = await http.post(
        f"{server.http}/sse/push", json={"user_id": user, "data": data}
    )
    assert reply.status_code == 202, reply.text
    return reply.json()


async def _wait_for(clients: list[LedgerClient], count: int) -> None:
    deadline = time.monotonic() + DELIVERY_DEADLINE
    while any(len(c.messages) < count for c in clients):
        if time.monotonic() > deadline:
            return  # the assertions below say what is missing
        await asyncio.sleep(0.05)


async def _metric(server: DaphneProcess, name: str) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        reply = await http.get(f"{server.http}/metrics")
    assert reply.status_code == 200, reply.text
    values = [
        float(line.split()[-1])
        for line in reply.text.splitlines()
        if line.startswith(f"{name} ")
    ]
    assert len(values) == 1, f"{name} not in /metrics"
    return values[0]


async def test_resume_while_pushes_keep_arriving_has_no_gap_or_duplicate_at_the_seam(
    cluster,
):
    a, b = cluster
    user = fresh_user_id("seam")
    replies: dict[int, str] = {}  # seq -> message id
    resumed: list[LedgerClient] = []
    asked: list[int] = []  # the last_seq each resuming client sent
    # Set when that many pushes have been accepted.
    midway = {80: asyncio.Event(), 180: asyncio.Event()}

    async def pusher(index: int) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            for n in range(PUSHES_EACH):
                server = (a, b)[(index + n) % 2]
                reply = await _push(http, server, user, {"marker": f"{index}-{n}"})
                replies[reply["recipients"][0]["seq"]] = reply["id"]
                if len(replies) in midway:
                    midway[len(replies)].set()
                await asyncio.sleep(PUSH_INTERVAL)

    async def resume_midway() -> None:
        await midway[80].wait()
        asked.append(0)
        resumed.append(await LedgerClient.open(b.ws, user, "from-zero", last_seq=0))
        await midway[180].wait()
        # A mid value: everything up to the newest seq acknowledged so far.
        mid = max(replies)
        asked.append(mid)
        resumed.append(await LedgerClient.open(a.ws, user, "from-mid", last_seq=mid))

    try:
        await asyncio.gather(*(pusher(i) for i in range(PUSHERS)), resume_midway())
        total = PUSHERS * PUSHES_EACH
        assert sorted(replies) == list(range(1, total + 1))
        from_zero, from_mid = resumed
        mid = asked[1]
        assert 0 < from_zero.connected["last_seq"] <= mid < total
        assert mid <= from_mid.connected["last_seq"] < total
        await _wait_for([from_zero], total)
        await _wait_for([from_mid], total - mid)
        await asyncio.sleep(0.5)  # a late duplicate would show up here
        for client, first in ((from_zero, 1), (from_mid, mid + 1)):
            assert client.seqs() == list(range(first, total + 1)), client.label
            assert [replies[s] for s in client.seqs()] == [
                replies[s] for s in range(first, total + 1)
            ]
            assert client.others == [], client.others
            assert client.open_now, client.closed
    finally:
        for client in resumed:
            await client.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())


async def test_resume_past_purged_messages_announces_history_truncated_then_resumes(
    cluster,
):
    a, b = cluster
    user = fresh_user_id("purged")
    async with httpx.AsyncClient(timeout=10) as http:
        ids = [(await _push(http, a, user, {"n": n}))["id"] for n in range(1, 11)]
    # An operator's cron job, against the servers' database, while they serve.
    done = await asyncio.to_thread(
        manage, a.env, "purge_messages", "--max-per-user", "4"
    )
    assert done.returncode == 0, done.stderr
    assert "personal stream entries over 4 per user:" in done.stdout, done.stdout

    client, connected = await connect_user(b.ws, user, last_seq=0)
    assert connected["last_seq"] == 10
    assert await client.receive_type("history_truncated") == {
        "type": "history_truncated",
        "oldest_seq": 7,
    }
    replayed = await receive_messages(client, 4)
    assert [(f["seq"], f["id"], f["data"]) for f in replayed] == [
        (n, ids[n - 1], {"n": n}) for n in range(7, 11)
    ]
    await assert_no_message(client, wait=0.5)

    # Resuming from inside the purged range is announced too; from just
    # before the oldest kept message it is not: nothing was lost.
    inside, _ = await connect_user(a.ws, user, last_seq=3)
    assert (await inside.receive_type("history_truncated"))["oldest_seq"] == 7
    assert [f["seq"] for f in await receive_messages(inside, 4)] == [7, 8, 9, 10]
    edge, _ = await connect_user(a.ws, user, last_seq=6)
    assert [f["seq"] for f in await receive_messages(edge, 4)] == [7, 8, 9, 10]

    # Live delivery goes on after the replay.
    async with httpx.AsyncClient(timeout=10) as http:
        live = await _push(http, a, user, {"n": 11})
    for socket in (client, inside, edge):
        frame = await socket.receive_type("message")
        assert (frame["seq"], frame["id"]) == (11, live["id"])
        await assert_no_message(socket, wait=0.3)
        await socket.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())


async def test_message_whose_live_event_never_arrives_is_sent_from_the_store_first(
    cluster,
):
    a, b = cluster
    user = fresh_user_id("gap")
    client, _ = await connect_user(b.ws, user)
    async with httpx.AsyncClient(timeout=10) as http:
        first = await _push(http, a, user, {"n": 1})
        assert (await client.receive_type("message"))["seq"] == 1
        recovered_before = await _metric(b, "bridge_messages_recovered_total")
        # Seq 2 is stored, but its layer event is never published.
        missed = await asyncio.to_thread(
            store_without_publishing, a.env, user, {"n": 2}
        )
        assert missed["seq"] == 2
        third = await _push(http, a, user, {"n": 3})
    frames = await receive_messages(client, 2)
    assert [(f["seq"], f["id"], f["data"]) for f in frames] == [
        (2, missed["id"], {"n": 2}),
        (3, third["id"], {"n": 3}),
    ]
    await assert_no_message(client, wait=0.5)
    assert await _metric(b, "bridge_messages_recovered_total") == recovered_before + 1
    assert first["id"] not in {f["id"] for f in frames}
    await client.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())
