"""Topic reset and message recall reaching live connections, through two real
daphne processes in token mode (SPEC §9 "History for users, recall, reset")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.credentials import django_shell, mint_token, token_mode_env
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.ws import Client, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

NAMESPACES = {"news": {"subscribe": "public"}}
KEYS = """
import json
from accounts.keys import api_key_create
print(json.dumps({
    "ops": api_key_create(name="ops", service="ops", permissions={"ops"}).raw,
    "push": api_key_create(name="push", service="ci", permissions={"push"}).raw,
}))
"""


@pytest.fixture(scope="module")
def cluster(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path_factory
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    env = token_mode_env(BRIDGE_TOPIC_NAMESPACES=json.dumps(NAMESPACES))
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("reset-recall"),
        2,
        database=migrated_sqlite,
        **env,
    ) as (a, b):
        yield a, b


@pytest.fixture(scope="module")
def keys(cluster) -> dict[str, str]:
    return django_shell(cluster[0].env, KEYS)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def connect(server: DaphneProcess, user: str) -> Client:
    client = await Client.connect(f"{server.ws}/ws?token={mint_token(user)}")
    assert (await client.receive())["type"] == "connected"
    return client


async def subscribe(client: Client, topic: str, **fields) -> dict:
    await client.send({"type": "subscribe", "topic": topic, "ref": "s", **fields})
    return await client.receive_type("subscribed")


async def test_reset_unsubscribes_every_subscriber_on_every_instance(
    cluster, keys, sockets
):
    a, b = cluster
    topic = f"news:{fresh_user_id('t')}"
    readers = [await connect(a, fresh_user_id()), await connect(b, fresh_user_id())]
    sockets += readers
    for reader in readers:
        await subscribe(reader, topic)
    async with httpx.AsyncClient(timeout=10) as http:
        for n in range(2):
            pushed = await http.post(
                f"{a.http}/sse/push",
                json={"topic": topic, "data": n},
                headers=bearer(keys["push"]),
            )
            assert pushed.status_code == 202, pushed.text
        for reader in readers:
            assert len(await receive_messages(reader, 2)) == 2

        reply = await http.post(
            f"{b.http}/api/topics/{topic}/reset", headers=bearer(keys["ops"])
        )
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"deleted": 2}
        for reader in readers:
            assert await reader.receive_type("unsubscribed") == {
                "type": "unsubscribed",
                "topic": topic,
                "reason": "reset",
            }

        # They may subscribe again; seq keeps counting, nothing old comes back.
        again = await subscribe(readers[0], topic, since=0)
        # `seq` is the topic's current last seq; messages 1-2 are gone.
        assert (again["seq"], again["recovered"]) == (2, False)
        pushed = await http.post(
            f"{a.http}/sse/push",
            json={"topic": topic, "data": "after"},
            headers=bearer(keys["push"]),
        )
        assert pushed.json()["seq"] == 3
        (message,) = await receive_messages(readers[0], 1)
        assert (message["seq"], message["data"]) == (3, "after")


async def test_recall_reaches_recipients_and_subscribers_and_resume_shows_a_tombstone(
    cluster, keys, sockets
):
    a, b = cluster
    alice, topic = fresh_user_id("alice"), f"news:{fresh_user_id('t')}"
    personal = await connect(b, alice)
    reader = await connect(a, fresh_user_id())
    sockets += [personal, reader]
    await subscribe(reader, topic)
    async with httpx.AsyncClient(timeout=10, headers=bearer(keys["push"])) as http:
        to_alice = await http.post(
            f"{a.http}/sse/push", json={"user_id": alice, "data": {"n": 1}}
        )
        to_topic = await http.post(
            f"{b.http}/sse/push", json={"topic": topic, "message": "wrong room"}
        )
        (message,) = await receive_messages(personal, 1)
        assert message["id"] == to_alice.json()["id"]
        assert len(await receive_messages(reader, 1)) == 1

        for pushed in (to_alice, to_topic):
            reply = await http.delete(f"{b.http}/api/messages/{pushed.json()['id']}")
            assert reply.status_code == 200, reply.text
        foreign = await http.delete(
            f"{a.http}/api/messages/00000000-0000-4000-8000-000000000000"
        )
        assert foreign.status_code == 404

    assert await personal.receive_type("recall") == {
        "type": "recall",
        "id": to_alice.json()["id"],
    }
    assert await reader.receive_type("recall") == {
        "type": "recall",
        "id": to_topic.json()["id"],
        "topic": topic,
    }
    # Resume replays the tombstone in its place.
    resumed = await Client.connect(f"{a.ws}/ws?token={mint_token(alice)}&last_seq=0")
    sockets.append(resumed)
    assert (await resumed.receive())["type"] == "connected"
    (tombstone,) = await receive_messages(resumed, 1)
    assert (tombstone["id"], tombstone["seq"], tombstone["data"]) == (
        to_alice.json()["id"],
        1,
        None,
    )
    assert tombstone["recalled"] is True
