import httpx
import pytest

from tests.support.ws import connect_user

pytestmark = pytest.mark.e2e


async def test_push_on_one_process_reaches_a_client_on_another(daphne_factory):
    a, b = daphne_factory(), daphne_factory()
    client, connected = await connect_user(b.ws, "alice")
    assert connected["user_id"] == "alice" and connected["last_seq"] == 0
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            f"{a.http}/sse/push",
            json={"user_id": "alice", "event": "notification", "message": "hi"},
        )
    assert reply.status_code == 202, reply.text
    frame = await client.receive_type("message")
    assert frame["data"] == {"text": "hi"}
    assert frame["seq"] == 1
    assert frame["to"] == "alice"
    assert frame["id"] == reply.json()["id"]
    await client.close()
