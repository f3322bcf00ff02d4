"""Presence is cluster-wide (SPEC §6): two daphne processes A and B share Redis,
and whatever one is asked about the other's connections, it knows.

Heartbeat interval 1 s: registry entries live two intervals, so a crashed
process's connections vanish within ~2 s and a flushed Redis refills within ~1 s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.cluster import FAST_HEARTBEAT, INTERVAL, instance_name
from tests.support.daphne import DaphneProcess, crash_free_daphnes
from tests.support.ids import fresh_user_id
from tests.support.polling import eventually
from tests.support.ws import Client, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

SPEC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
USER_AGENT = "bridge-presence-tests/1.0"
CONNECTION_FIELDS = {
    "connection_id",
    "instance",
    "connected_at",
    "last_seen",
    "remote_addr",
    "user_agent",
    "acked_seq",
}


@pytest.fixture(scope="module")
def cluster(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    with crash_free_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("presence"),
        2,
        database=migrated_sqlite,
        **FAST_HEARTBEAT,
    ) as (a, b):
        yield a, b


async def open_as(
    sockets: list[Client], process: DaphneProcess, user_id: str
) -> tuple[Client, dict]:
    client = await Client.connect(
        f"{process.ws}/ws?user_id={user_id}", user_agent_header=USER_AGENT
    )
    sockets.append(client)
    connected = await client.receive()
    assert connected["type"] == "connected", connected
    return client, connected


async def get_json(http: httpx.AsyncClient, url: str) -> Any:
    reply = await http.get(url)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def online(http: httpx.AsyncClient, process: DaphneProcess) -> dict[str, int]:
    page = await get_json(http, f"{process.http}/api/users/online?limit=1000")
    users = {entry["user_id"]: entry["connections"] for entry in page["users"]}
    assert page["count"] >= len(users), page
    return users


async def connections(
    http: httpx.AsyncClient, process: DaphneProcess, user_id: str
) -> list[dict[str, Any]]:
    reply = await get_json(http, f"{process.http}/api/users/{user_id}/connections")
    return reply["connections"]


async def push(http: httpx.AsyncClient, process: DaphneProcess, user_id: str) -> dict:
    reply = await http.post(
        f"{process.http}/sse/push", json={"user_id": user_id, "message": "hello"}
    )
    assert reply.status_code == 202, reply.text
    return reply.json()


async def test_a_user_connected_to_b_is_listed_online_on_a(cluster, http, sockets):
    a, b = cluster
    bob = fresh_user_id("bob")
    await open_as(sockets, b, bob)
    await open_as(sockets, b, bob)

    listed = await online(http, a)

    assert listed.get(bob) == 2, listed


async def test_connection_details_of_a_user_on_b_are_served_by_a(
    cluster, http, sockets
):
    a, b = cluster
    bob = fresh_user_id("bob")
    _, first = await open_as(sockets, b, bob)
    _, second = await open_as(sockets, b, bob)

    found = await connections(http, a, bob)

    assert {c["connection_id"] for c in found} == {
        first["connection_id"],
        second["connection_id"],
    }
    for connection in found:
        assert set(connection) >= CONNECTION_FIELDS, connection
        assert connection["instance"] == instance_name(b)
        assert SPEC_TIME.match(connection["connected_at"]), connection
        assert SPEC_TIME.match(connection["last_seen"]), connection
        assert connection["remote_addr"] == "127.0.0.1"
        assert connection["user_agent"] == USER_AGENT
        assert connection["acked_seq"] is None


async def test_a_users_ack_shows_as_acked_seq_after_one_heartbeat(
    cluster, http, sockets
):
    a, b = cluster
    carol = fresh_user_id("carol")
    client, connected = await open_as(sockets, b, carol)
    for _ in range(2):
        await push(http, a, carol)
    delivered = await receive_messages(client, 2)
    assert [m["seq"] for m in delivered] == [1, 2]
    await client.send({"type": "ack", "seq": 2})

    async def acked_and_seen() -> dict[str, Any]:
        (connection,) = await connections(http, a, carol)
        assert connection["acked_seq"] == 2, connection
        assert connection["last_seen"] > connection["connected_at"], connection
        return connection

    connection = await eventually(acked_and_seen, within=2.5 * INTERVAL)
    assert connection["connection_id"] == connected["connection_id"]


async def test_push_reply_on_a_counts_connections_on_b(cluster, http, sockets):
    a, b = cluster
    dave = fresh_user_id("dave")
    nobody = fresh_user_id("nobody")
    for _ in range(3):
        await open_as(sockets, b, dave)

    reply = await push(http, a, dave)
    offline = await push(http, a, nobody)

    (recipient,) = reply["recipients"]
    assert (recipient["user_id"], recipient["online"], recipient["connections"]) == (
        dave,
        True,
        3,
    )
    (absent,) = offline["recipients"]
    assert (absent["online"], absent["connections"]) == (False, 0)


async def test_stats_on_a_count_connections_of_both_instances(cluster, http, sockets):
    a, b = cluster
    erin = fresh_user_id("erin")
    await open_as(sockets, a, erin)
    for _ in range(2):
        await open_as(sockets, b, erin)

    async def both_counted() -> dict[str, Any]:
        stats = await get_json(http, f"{a.http}/api/stats")
        by_name = {i["instance"]: i for i in stats["instances"]}
        assert instance_name(a) in by_name and instance_name(b) in by_name, stats
        assert by_name[instance_name(a)]["connections"] == 1, stats
        assert by_name[instance_name(b)]["connections"] == 2, stats
        return stats

    # B publishes its count on its heartbeat.
    stats = await eventually(both_counted, within=2.5 * INTERVAL)
    assert stats["total_connections"] == sum(
        i["connections"] for i in stats["instances"]
    )
    assert stats["total_connections"] >= 3
    assert stats["online_users"] >= 1
    for entry in stats["instances"]:
        assert SPEC_TIME.match(entry["started_at"]), entry


async def test_connections_of_a_killed_process_vanish_within_two_intervals(
    cluster, http, sockets, tmp_path
):
    a, _ = cluster
    # A third process on the same Redis and database, to SIGKILL.
    victim = DaphneProcess(a.env, tmp_path / "victim.log").start()
    try:
        frank = fresh_user_id("frank")  # only on the victim
        grace = fresh_user_id("grace")  # on the victim and on A
        for _ in range(2):
            await open_as(sockets, victim, frank)
        await open_as(sockets, victim, grace)
        await open_as(sockets, a, grace)

        async def victim_listed() -> None:
            stats = await get_json(http, f"{a.http}/api/stats")
            names = [i["instance"] for i in stats["instances"]]
            assert instance_name(victim) in names, stats

        await eventually(victim_listed, within=2.5 * INTERVAL)
        assert (await online(http, a)).get(frank) == 2
        victim_name = instance_name(victim)
    finally:
        victim.stop(kill=True)

    async def gone() -> None:
        listed = await online(http, a)
        assert frank not in listed, listed
        assert listed.get(grace) == 1, listed
        assert await connections(http, a, frank) == []
        assert [c["instance"] for c in await connections(http, a, grace)] == [
            instance_name(a)
        ]
        stats = await get_json(http, f"{a.http}/api/stats")
        assert victim_name not in [i["instance"] for i in stats["instances"]], stats
        reply = await push(http, a, frank)
        assert reply["recipients"][0]["connections"] == 0, reply

    await eventually(gone, within=2.5 * INTERVAL)


async def test_after_redis_loses_its_data_clients_still_receive_and_presence_returns(
    cluster, http, sockets, redis_server
):
    a, b = cluster
    heidi = fresh_user_id("heidi")
    on_a, _ = await open_as(sockets, a, heidi)
    on_b, _ = await open_as(sockets, b, heidi)
    assert (await online(http, a)).get(heidi) == 2

    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as direct:
        direct.flushall()
    assert heidi not in await online(http, a), "FLUSHALL did not empty presence"

    reply = await push(http, a, heidi)
    for client in (on_a, on_b):
        (message,) = await receive_messages(client, 1, timeout=2 * INTERVAL + 1)
        assert message["id"] == reply["id"]
        assert message["seq"] == 1

    async def present_again() -> None:
        assert (await online(http, a)).get(heidi) == 2
        assert len(await connections(http, b, heidi)) == 2

    # One heartbeat rewrites every entry; allow for the beat's phase.
    await eventually(present_again, within=1.5 * INTERVAL + 0.5)
