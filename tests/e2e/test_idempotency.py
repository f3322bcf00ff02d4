"""Concurrent duplicates of one idempotent push across two real processes
(SPEC §5): one message is stored and sent; every caller gets its id.

That a replay returns the original reply unchanged, even while the original
push is still being sent, is tested deterministically in process
(tests/messaging/test_idempotency.py)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.support.daphne import DaphneProcess
from tests.support.ids import fresh_user_id
from tests.support.logs import assert_no_crash
from tests.support.ws import assert_no_message, connect_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

DUPLICATES = 10


async def _duplicates(
    servers: tuple[DaphneProcess, DaphneProcess], body: dict
) -> list[httpx.Response]:
    """DUPLICATES identical pushes at once, alternating between the processes."""
    limits = httpx.Limits(max_connections=DUPLICATES)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        replies = await asyncio.gather(
            *(
                http.post(f"{servers[n % 2].http}/sse/push", json=body)
                for n in range(DUPLICATES)
            )
        )
    assert [r.status_code for r in replies] == [202] * DUPLICATES, [
        r.text for r in replies
    ]
    return replies


async def test_concurrent_pushes_with_one_key_store_and_send_exactly_one_message(
    cluster,
):
    a, b = cluster
    user = fresh_user_id("concurrent")
    on_a, _ = await connect_user(a.ws, user)
    on_b, _ = await connect_user(b.ws, user)
    body = {"user_id": user, "data": {"build": 42}, "idempotency_key": "deploy-42"}
    replies = await _duplicates(cluster, body)
    ids = {r.json()["id"] for r in replies}
    assert len(ids) == 1, ids
    assert {r.json()["recipients"][0]["seq"] for r in replies} == {1}
    # One original reply; every other one is a replay, and says so.
    flags = Counter(r.headers.get("Idempotent-Replayed") for r in replies)
    assert flags == {"true": DUPLICATES - 1, None: 1}, flags

    async with httpx.AsyncClient(timeout=10) as http:
        history = await http.get(f"{a.http}/api/users/{user}/messages")
    assert history.status_code == 200, history.text
    stored = history.json()["messages"]
    assert [(m["id"], m["seq"]) for m in stored] == [(ids.pop(), 1)]

    for client in (on_a, on_b):
        frame = await client.receive_type("message")
        assert (frame["id"], frame["seq"], frame["data"]) == (
            stored[0]["id"],
            1,
            {"build": 42},
        )
        await assert_no_message(client, wait=1.0)
        await client.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())
