"""What the client does with refusals in token mode (SPEC §4, §11): never
reconnects after 4400 or 4403, and after 4401 only with a new token from its
token provider."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_client import Client, Closed, State
from bridge_project.embedded_redis import EmbeddedRedis
from tests.clients.conftest import SERVER_ENV
from tests.support.credentials import mint_token, token_mode_env
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

# Long enough for a reconnect attempt (0.5-1 s) to have happened.
WATCH_SECONDS = 1.5


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("auth"),
        1,
        database=migrated_sqlite,
        **token_mode_env(**SERVER_ENV),
    ) as (process,):
        yield process


async def _refused(client: Client) -> Closed:
    with pytest.raises(Closed) as closed:
        await client.connect()
    await asyncio.sleep(WATCH_SECONDS)
    assert client.reconnects == 0
    assert client.state is State.DISCONNECTED
    return closed.value


async def test_a_token_for_someone_else_is_4403_and_never_retried(server, clients):
    alice = fresh_user_id("alice")
    client = clients(server.ws, user_id=alice, token=mint_token(fresh_user_id("bob")))
    closed = await _refused(client)
    assert closed.code == 4403
    assert closed.error["code"] == "forbidden"


async def test_a_bad_user_id_is_4400_and_never_retried(server, clients):
    client = clients(server.ws, user_id="not a user id!", token=mint_token("x"))
    closed = await _refused(client)
    assert closed.code == 4400


async def test_4401_is_retried_once_the_token_provider_has_a_new_token(server, clients):
    user = fresh_user_id("provided")
    tokens = iter(["not-a-token", mint_token(user)])
    asked: list[int] = []

    async def provider() -> str:
        asked.append(1)
        return next(tokens)

    client = clients(server.ws, user_id=user, token_provider=provider)
    await client.connect()
    assert client.user_id == user
    assert len(asked) == 2
    assert client.reconnects == 1


async def test_4401_is_not_retried_when_the_provider_has_nothing_new(server, clients):
    user = fresh_user_id("stale")
    expired = mint_token(user, ttl_seconds=-10)
    asked: list[int] = []

    def provider() -> str:
        asked.append(1)
        return expired

    client = clients(server.ws, user_id=user, token_provider=provider)
    closed = await _refused(client)
    assert closed.code == 4401
    assert len(asked) == 2  # once to connect, once after the 4401


async def test_4401_without_a_provider_is_final(server, clients):
    client = clients(server.ws, user_id=fresh_user_id("none"))
    closed = await _refused(client)
    assert closed.code == 4401
