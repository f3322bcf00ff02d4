"""What the client does with refusals in token mode (SPEC §4, §11): never
reconnects after 4400 or 4403, and after 4401 only with a new token from its
token provider."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_client import AsyncBridgeHTTP, Client, Closed, Message, State
from bridge_project.embedded_redis import EmbeddedRedis
from tests.clients.conftest import SERVER_ENV
from tests.support.credentials import django_shell, mint_token, token_mode_env
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.polling import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

# Longer than the first reconnect delay would be (0.5-1 s).
WATCH_SECONDS = 1.1


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


CREATE_KEYS = """
import json
from accounts.keys import api_key_create
from accounts.models import PublicAccount
bot, _ = PublicAccount.objects.get_or_create(handle="echo_bot")
print(json.dumps({
    "service": api_key_create(
        name="svc", service="tests", permissions={"push", "issue_tokens"}
    ).raw,
    "bot": api_key_create(name="bot", account=bot).raw,
}))
"""


@pytest.fixture(scope="module")
def keys(server: DaphneProcess) -> dict[str, str]:
    return django_shell(server.env, CREATE_KEYS)


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


async def test_a_failing_token_provider_is_asked_again_after_a_backoff(server, clients):
    user = fresh_user_id("flaky")
    answers: list[str | Exception] = [
        RuntimeError("the token service is down"),
        mint_token(user),
    ]

    def provider() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = clients(server.ws, user_id=user, token_provider=provider)
    await client.connect()
    assert client.user_id == user and client.reconnects == 1 and answers == []


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


# --- token expiry and refresh (SPEC §10) ---------------------------------------------


async def test_a_token_refreshed_before_expiry_keeps_the_connection_open(
    server, clients, keys
):
    user = fresh_user_id("refresh")
    issued: list[int] = []

    def provider() -> str:
        # The first token has 2 s left (token_expiring comes at once); the
        # next ones an hour.
        issued.append(1)
        return mint_token(user, ttl_seconds=2 if len(issued) == 1 else 3600)

    client = clients(server.ws, user_id=user, token_provider=provider)
    got: list[Message] = []
    client.on("message", got.append)
    await client.connect()
    first_expiry, connection = client.expires_at, client.connection_id
    assert first_expiry is not None
    await eventually(lambda: _refreshed(client), within=5)
    await asyncio.sleep(3)  # past the first token's expiry
    assert client.connection_id == connection and client.connected
    assert client.reconnects == 0 and len(issued) == 2
    assert client.expires_at is not None and client.expires_at > first_expiry
    async with AsyncBridgeHTTP(server.http, keys["service"]) as http:
        await http.push(user_id=user, message="still here")
    await eventually(lambda: _count(got, 1), within=5)


async def test_without_a_provider_an_expiring_token_is_told_then_closed_4401(
    server, clients
):
    user = fresh_user_id("expires")
    client = clients(server.ws, user_id=user, token=mint_token(user, ttl_seconds=2))
    told: list[dict] = []
    client.on("token_expiring", told.append)
    await client.connect()
    with pytest.raises(Closed) as closed:
        await asyncio.wait_for(client.wait_closed(), 6)
    assert closed.value.code == 4401
    assert closed.value.error["code"] == "token_expired"
    assert len(told) == 1 and client.reconnects == 0


def _refreshed(client: Client) -> None:
    assert client.stats["refreshes"] == 1


def _count(items: list, n: int) -> None:
    assert len(items) >= n, f"{len(items)} of {n}"


async def test_a_bot_connects_with_its_api_key_and_a_user_with_a_minted_token(
    server, clients, keys
):
    user = fresh_user_id("minted")
    async with AsyncBridgeHTTP(server.http, keys["service"]) as http:

        async def provider() -> str:
            return (await http.token(user))["token"]

        alice = clients(server.ws, token_provider=provider)  # the token names her
        bot = clients(server.ws, user_id="echo_bot", token=keys["bot"])
        got: list[Message] = []
        alice.on("message", got.append)
        await alice.connect()
        await bot.connect()
        assert alice.user_id == user
        await bot.send_message("hi from the bot", to=user)
        await eventually(lambda: _count(got, 1), within=5)
        assert got[0].sender == "echo_bot"


async def test_the_cli_listens_in_token_mode_with_a_minted_token(server, keys):
    user = fresh_user_id("cli")
    env = {**os.environ, "BRIDGE_URL": server.http, "BRIDGE_API_KEY": keys["service"]}
    listen = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bridge_client", "listen", "--user", user),
        *("--count", "1"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert listen.stderr is not None
        started = await asyncio.wait_for(listen.stderr.readline(), 20)
        assert started.decode().startswith(f"# listening as {user}")
        async with AsyncBridgeHTTP(server.http, keys["service"]) as http:
            await http.push(user_id=user, message="in token mode")
        out, _ = await asyncio.wait_for(listen.communicate(), 20)
    finally:
        if listen.returncode is None:
            listen.kill()
            await listen.wait()
    assert json.loads(out)["data"] == {"text": "in token mode"}
