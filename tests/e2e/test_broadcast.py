"""Broadcast across processes (SPEC §3, §6): `{"broadcast": true}` pushed on A
reaches every connected user on A and B, live only, and needs `broadcast`.

Two token-mode daphne processes sharing Redis and one database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.cluster import FAST_HEARTBEAT
from tests.support.credentials import bearer, django_shell, mint_token, token_mode_env
from tests.support.daphne import DaphneProcess, crash_free_daphnes
from tests.support.ids import fresh_user_id
from tests.support.ws import Client, assert_no_message, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

CREATE_KEYS = """
import json
from accounts.keys import api_key_create
print(json.dumps({
    "broadcast": api_key_create(
        name="announcer", service="status-page", permissions={"push", "broadcast"}
    ).raw,
    "push": api_key_create(name="push", service="builds", permissions={"push"}).raw,
    "ops": api_key_create(name="ops", service="oncall", permissions={"ops"}).raw,
}))
"""


@pytest.fixture(scope="module")
def cluster(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    with crash_free_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("broadcast"),
        2,
        database=migrated_sqlite,
        **token_mode_env(**FAST_HEARTBEAT),
    ) as (a, b):
        yield a, b


@pytest.fixture(scope="module")
def keys(cluster: tuple[DaphneProcess, DaphneProcess]) -> dict[str, str]:
    return django_shell(cluster[0].env, CREATE_KEYS)


async def open_as(sockets: list[Client], process: DaphneProcess, user_id: str):
    client = await Client.connect(
        f"{process.ws}/ws?user_id={user_id}&token={mint_token(user_id)}"
    )
    sockets.append(client)
    connected = await client.receive()
    assert connected["type"] == "connected", connected
    return client


async def test_broadcast_on_a_reaches_users_on_both_processes(
    cluster, keys, http, sockets
):
    a, b = cluster
    on_a, on_b = fresh_user_id("lena"), fresh_user_id("mo")
    clients = [
        await open_as(sockets, a, on_a),
        await open_as(sockets, b, on_b),
        await open_as(sockets, b, on_b),
    ]

    reply = await http.post(
        f"{a.http}/sse/push",
        json={"broadcast": True, "message": "maintenance at noon"},
        headers=bearer(keys["broadcast"]),
    )

    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert set(body) == {"id", "broadcast", "online_users"}, body
    assert body["broadcast"] is True
    frames = [(await receive_messages(client, 1))[0] for client in clients]
    for frame in frames:
        assert frame["id"] == body["id"]
        assert frame["seq"] is None and frame["to"] is None, frame
        assert frame["data"] == {"text": "maintenance at noon"}
        assert frame["event"] == "message"
        assert frame["from"] is None, "a service key's push is anonymous"
        assert frame["mentions"] == []
    # Counted cluster-wide: both users, whichever process they are on.
    online = await http.get(f"{a.http}/api/users/online", headers=bearer(keys["ops"]))
    assert online.status_code == 200, online.text
    assert body["online_users"] >= 2
    assert body["online_users"] == online.json()["count"], (body, online.json())


async def test_broadcast_is_not_stored(cluster, keys, http, sockets):
    a, b = cluster
    nina = fresh_user_id("nina")
    client = await open_as(sockets, b, nina)
    reply = await http.post(
        f"{a.http}/sse/push",
        json={"broadcast": True, "message": "live only"},
        headers=bearer(keys["broadcast"]),
    )
    assert reply.status_code == 202, reply.text
    await receive_messages(client, 1)

    history = await http.get(
        f"{a.http}/api/users/{nina}/messages", headers=bearer(keys["ops"])
    )

    assert history.status_code == 200, history.text
    assert history.json()["messages"] == []


async def test_broadcast_without_the_broadcast_permission_is_403_and_sends_nothing(
    cluster, keys, http, sockets
):
    a, b = cluster
    client = await open_as(sockets, b, fresh_user_id("omar"))

    reply = await http.post(
        f"{a.http}/sse/push",
        json={"broadcast": True, "message": "not allowed"},
        headers=bearer(keys["push"]),
    )

    assert reply.status_code == 403, reply.text
    assert reply.json()["error"] == "permission_denied"
    await assert_no_message(client, wait=0.5)
