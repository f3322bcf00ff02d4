"""Two daphne processes sharing Redis behave as one service (SPEC §3, §5)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.ids import fresh_user_id
from tests.support.logs import assert_no_crash
from tests.support.ws import assert_no_message, connect_user

pytestmark = pytest.mark.e2e


async def test_push_on_one_process_reaches_a_client_on_another(cluster):
    a, b = cluster
    alice = fresh_user_id("alice")
    client, connected = await connect_user(b.ws, alice)
    assert connected["user_id"] == alice and connected["last_seq"] == 0
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(
            f"{a.http}/sse/push",
            json={"user_id": alice, "event": "notification", "message": "hi"},
        )
    assert reply.status_code == 202, reply.text
    frame = await client.receive_type("message")
    assert frame["data"] == {"text": "hi"}
    assert frame["seq"] == 1
    assert frame["to"] == alice
    assert frame["event"] == "notification"
    assert frame["id"] == reply.json()["id"]
    assert reply.json()["recipients"][0]["seq"] == 1
    await client.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())


async def test_connections_of_one_user_on_two_processes_get_the_same_message(
    cluster,
):
    a, b = cluster
    bob = fresh_user_id("bob")
    on_a, _ = await connect_user(a.ws, bob)
    on_b, _ = await connect_user(b.ws, bob)
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(
            f"{a.http}/sse/push", json={"user_id": bob, "data": {"n": 1}}
        )
    assert reply.status_code == 202, reply.text
    from_a = await on_a.receive_type("message")
    from_b = await on_b.receive_type("message")
    assert from_a["id"] == from_b["id"] == reply.json()["id"]
    assert from_a["seq"] == from_b["seq"] == 1
    assert from_a["data"] == from_b["data"] == {"n": 1}
    # Exactly one copy per connection, even though both processes subscribe.
    await assert_no_message(on_a, wait=0.5)
    await assert_no_message(on_b, wait=0.5)
    await on_a.close()
    await on_b.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())
