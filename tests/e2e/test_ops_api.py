"""The operations API in production mode (SPEC §4, §6): two token-mode daphne
processes A and B; only an API key with `ops` may read presence or disconnect,
and a disconnect asked on A closes the user's sockets on B with 4000.
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
from tests.support.polling import eventually
from tests.support.ws import Client, assert_no_message

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

# Keys made in the servers' database: one per permission set the tests need.
CREATE_KEYS = """
import json
from accounts.keys import api_key_create
print(json.dumps({
    "ops": api_key_create(name="ops", service="oncall", permissions={"ops"}).raw,
    "push": api_key_create(name="push", service="builds", permissions={"push"}).raw,
}))
"""

OPS_READS = [
    "/api/stats",
    "/api/users/online",
    "/api/users/{user}/connections",
    "/api/users/{user}/messages",
]


@pytest.fixture(scope="module")
def cluster(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    with crash_free_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("ops-api"),
        2,
        database=migrated_sqlite,
        **token_mode_env(**FAST_HEARTBEAT),
    ) as (a, b):
        yield a, b


@pytest.fixture(scope="module")
def keys(cluster: tuple[DaphneProcess, DaphneProcess]) -> dict[str, str]:
    return django_shell(cluster[0].env, CREATE_KEYS)


async def open_as(
    sockets: list[Client], process: DaphneProcess, user_id: str
) -> tuple[Client, dict]:
    client = await Client.connect(
        f"{process.ws}/ws?user_id={user_id}&token={mint_token(user_id)}"
    )
    sockets.append(client)
    connected = await client.receive()
    assert connected["type"] == "connected", connected
    return client, connected


@pytest.mark.parametrize("path", OPS_READS)
async def test_ops_reads_need_an_ops_key(cluster, keys, http, path):
    a, _ = cluster
    url = a.http + path.format(user=fresh_user_id())

    anonymous = await http.get(url)
    push_only = await http.get(url, headers=bearer(keys["push"]))
    ops = await http.get(url, headers=bearer(keys["ops"]))

    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["error"] == "not_authenticated"
    assert push_only.status_code == 403, push_only.text
    assert push_only.json()["error"] == "permission_denied"
    assert ops.status_code == 200, ops.text


async def test_disconnect_without_ops_is_refused_and_closes_nothing(
    cluster, keys, http, sockets
):
    a, b = cluster
    ivan = fresh_user_id("ivan")
    client, _ = await open_as(sockets, b, ivan)
    url = f"{a.http}/api/users/{ivan}/disconnect"

    anonymous = await http.post(url)
    push_only = await http.post(url, headers=bearer(keys["push"]))

    assert anonymous.status_code == 401, anonymous.text
    assert push_only.status_code == 403, push_only.text
    assert push_only.json()["error"] == "permission_denied"
    await assert_no_message(client, wait=0.5)
    await client.send({"type": "ping"})
    assert (await client.receive_type("pong"))["type"] == "pong"


async def test_disconnect_on_a_closes_the_users_sockets_on_b_with_4000(
    cluster, keys, http, sockets
):
    a, b = cluster
    judy = fresh_user_id("judy")
    bystander = fresh_user_id("kim")
    judys = [(await open_as(sockets, b, judy))[0] for _ in range(2)]
    judys.append((await open_as(sockets, a, judy))[0])
    other, _ = await open_as(sockets, b, bystander)

    reply = await http.post(
        f"{a.http}/api/users/{judy}/disconnect", headers=bearer(keys["ops"])
    )

    assert reply.status_code == 200, reply.text
    assert reply.json() == {"closed": 3}
    for client in judys:
        error = await client.receive_type("error", timeout=5)
        assert error["code"] == "disconnected", error
        assert isinstance(error["message"], str) and error["message"]
        assert await client.close_code(timeout=5) == 4000
    # Only that user's sockets.
    await other.send({"type": "ping"})
    assert (await other.receive_type("pong"))["type"] == "pong"

    async def unregistered() -> None:
        found = await http.get(
            f"{a.http}/api/users/{judy}/connections", headers=bearer(keys["ops"])
        )
        assert found.json() == {"connections": []}

    await eventually(unregistered, within=2.0)


async def test_disconnect_of_a_user_with_no_connections_closes_none(
    cluster, keys, http
):
    a, _ = cluster
    reply = await http.post(
        f"{a.http}/api/users/{fresh_user_id()}/disconnect",
        headers=bearer(keys["ops"]),
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"closed": 0}
