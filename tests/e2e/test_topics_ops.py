"""Topics in token mode through two real daphne processes (SPEC §4, §8):
namespaces from BRIDGE_TOPIC_NAMESPACES, token grants, membership removed over
the API ending a subscription on the other instance, presence per topic and
its healing after FLUSHALL, the topic history and stats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.credentials import django_shell, mint_token, token_mode_env
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.polling import eventually
from tests.support.ws import Client, assert_no_message, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

NAMESPACES = {
    "tok": {"subscribe": "token"},
    "club": {"subscribe": "members", "join_leave": True},
    "hidden": {"subscribe": "public", "presence": False},
    "news": {"subscribe": "public"},
}
KEYS = """
import json
from accounts.keys import api_key_create
print(json.dumps({
    "ops": api_key_create(name="ops", service="ops", permissions={"ops"}).raw,
    "topics": api_key_create(
        name="members", service="crm", permissions={"topics"}
    ).raw,
    "push": api_key_create(name="push", service="ci", permissions={"push"}).raw,
}))
"""


@pytest.fixture(scope="module")
def cluster(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path_factory
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    env = token_mode_env(
        BRIDGE_TOPIC_NAMESPACES=json.dumps(NAMESPACES),
        BRIDGE_HEARTBEAT_INTERVAL="1",
        BRIDGE_HEARTBEAT_TIMEOUT="30",
    )
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("topics-ops"),
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


async def connect(server: DaphneProcess, user: str, topics=()) -> Client:
    token = mint_token(user, topics=topics)
    client = await Client.connect(f"{server.ws}/ws?token={token}")
    assert (await client.receive())["type"] == "connected"
    return client


async def subscribe(client: Client, topic: str) -> dict:
    await client.send({"type": "subscribe", "topic": topic, "ref": "s"})
    while True:
        frame = await client.receive()
        if frame["type"] in ("subscribed", "error"):
            return frame


def topic(namespace: str) -> str:
    return f"{namespace}:{fresh_user_id('t')}"


async def test_namespaces_come_from_the_environment_at_start_up(cluster, keys):
    a, _ = cluster
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.get(
            f"{a.http}/api/topics/{topic('hidden')}", headers=bearer(keys["ops"])
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["namespace"]["presence"] is False
    assert reply.json()["namespace"]["subscribe"] == "public"


async def test_token_grants_admit_exactly_the_granted_topics(cluster, sockets):
    a, b = cluster
    granted, other = topic("tok"), topic("tok")
    by_name = await connect(a, fresh_user_id(), topics=[granted])
    by_pattern = await connect(b, fresh_user_id(), topics=["tok:*"])
    without = await connect(b, fresh_user_id())
    sockets += [by_name, by_pattern, without]

    assert (await subscribe(by_name, granted))["type"] == "subscribed"
    assert (await subscribe(by_name, other))["code"] == "forbidden"
    assert (await subscribe(by_pattern, other))["type"] == "subscribed"
    assert (await subscribe(without, granted))["code"] == "forbidden"
    # A grant also admits where the namespace wants membership.
    club = topic("club")
    granted_club = await connect(a, fresh_user_id(), topics=[club])
    sockets.append(granted_club)
    assert (await subscribe(granted_club, club))["type"] == "subscribed"


async def test_removing_a_member_ends_the_subscription_on_the_other_instance(
    cluster, keys, sockets
):
    a, b = cluster
    room, user = topic("club"), fresh_user_id("member")
    async with httpx.AsyncClient(timeout=10, headers=bearer(keys["topics"])) as http:
        added = await http.put(f"{a.http}/api/topics/{room}/members/{user}")
        assert added.json() == {"added": True}
        client = await connect(b, user)
        sockets.append(client)
        assert (await subscribe(client, room))["type"] == "subscribed"

        removed = await http.delete(f"{a.http}/api/topics/{room}/members/{user}")
        ended = await client.receive_type("unsubscribed")
        again = await http.delete(f"{a.http}/api/topics/{room}/members/{user}")

    assert removed.json() == {"removed": True}
    assert again.json() == {"removed": False}
    assert ended == {"type": "unsubscribed", "topic": room, "reason": "removed"}
    async with httpx.AsyncClient(timeout=10, headers=bearer(keys["push"])) as http:
        pushed = await http.post(
            f"{a.http}/sse/push", json={"topic": room, "message": "members only"}
        )
    assert pushed.status_code == 202, pushed.text
    await assert_no_message(client, 0.5)
    # Membership is refused again on a new subscribe.
    assert (await subscribe(client, room))["code"] == "forbidden"


async def test_presence_lists_each_user_once_across_instances_and_heals_after_flushall(
    cluster, keys, redis_server, sockets
):
    a, b = cluster
    room = topic("news")
    ann, bob = fresh_user_id("ann"), fresh_user_id("bob")
    for server, user in ((a, ann), (b, ann), (b, bob)):
        client = await connect(server, user)
        sockets.append(client)
        assert (await subscribe(client, room))["type"] == "subscribed"
    expected = {
        "users": sorted(
            [{"user_id": ann, "connections": 2}, {"user_id": bob, "connections": 1}],
            key=lambda u: u["user_id"],
        ),
        "count": 2,
    }

    async with httpx.AsyncClient(timeout=10, headers=bearer(keys["ops"])) as http:

        async def presence() -> dict:
            reply = await http.get(f"{b.http}/api/topics/{room}/presence")
            assert reply.status_code == 200, reply.text
            return reply.json()

        assert await presence() == expected
        redis.Redis.from_url(redis_server.url).flushall()

        async def healed() -> None:
            assert await presence() == expected

        # Rebuilt by the heartbeat (1 s here), nobody reconnecting.
        await eventually(healed, within=5)
        stats = (await http.get(f"{a.http}/api/stats")).json()
    assert stats["subscriptions"] >= 3
    assert stats["topics"] >= 1


async def test_a_namespace_without_presence_does_not_list_subscribers(cluster, keys):
    a, _ = cluster
    async with httpx.AsyncClient(timeout=10, headers=bearer(keys["ops"])) as http:
        reply = await http.get(f"{a.http}/api/topics/{topic('hidden')}/presence")
    assert reply.status_code == 403
    assert reply.json()["error"] == "permission_denied"


async def test_topic_history_pages_what_was_pushed(cluster, keys, sockets):
    a, b = cluster
    room = topic("news")
    async with httpx.AsyncClient(timeout=10) as http:
        for n in range(3):
            pushed = await http.post(
                f"{a.http}/sse/push",
                json={"topic": room, "data": {"n": n}},
                headers=bearer(keys["push"]),
            )
            assert pushed.json()["seq"] == n + 1
        page = await http.get(
            f"{b.http}/api/topics/{room}/messages",
            params={"after_seq": 1, "limit": 1},
            headers=bearer(keys["ops"]),
        )
        refused = await http.get(
            f"{b.http}/api/topics/{room}/messages", headers=bearer(keys["push"])
        )
    assert page.status_code == 200, page.text
    (message,) = page.json()["messages"]
    assert (message["seq"], message["topic"], message["data"]) == (2, room, {"n": 1})
    assert page.json()["next_after_seq"] == 2
    assert refused.status_code == 403


async def test_join_and_leave_in_token_mode_reach_the_other_instance(
    cluster, keys, sockets
):
    a, b = cluster
    room = topic("club")
    watcher = await connect(a, fresh_user_id("w"), topics=[room])
    sockets.append(watcher)
    await subscribe(watcher, room)
    joiner_id = fresh_user_id("j")
    joiner = await connect(b, joiner_id, topics=[room])
    await subscribe(joiner, room)
    joined = await watcher.receive_type("join")
    await joiner.close()
    left = await watcher.receive_type("leave")
    assert (joined["user_id"], left["user_id"]) == (joiner_id, joiner_id)


async def test_a_push_to_a_topic_counts_subscribers_on_both_instances(
    cluster, keys, sockets
):
    a, b = cluster
    room = topic("news")
    readers = [await connect(s, fresh_user_id()) for s in (a, b)]
    sockets += readers
    for reader in readers:
        await subscribe(reader, room)
    async with httpx.AsyncClient(timeout=10, headers=bearer(keys["push"])) as http:
        reply = await http.post(f"{b.http}/sse/push", json={"topic": room, "data": 1})
    assert reply.json()["subscribers"] == 2
    for reader in readers:
        assert [m["data"] for m in await receive_messages(reader, 1)] == [1]
