"""Rate limits that hold across reconnects and processes (SPEC §2, §11), on two
real daphne processes sharing the suite's Redis: `message` frames per user, and
handshakes per user (4429 `rate_limited` with `retry_after_ms`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.logs import assert_no_crash
from tests.support.ws import Client, connect_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

MESSAGES_PER_MINUTE = 3
HANDSHAKES_PER_USER = 3


@pytest.fixture(scope="module")
def pair(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    workdir = tmp_path_factory.mktemp("ws-limits")
    with running_daphnes(
        redis_server.url,
        workdir,
        2,
        database=migrated_sqlite,
        BRIDGE_CLIENT_MESSAGES_PER_MINUTE=str(MESSAGES_PER_MINUTE),
        BRIDGE_HANDSHAKES_PER_MINUTE_PER_USER=str(HANDSHAKES_PER_USER),
    ) as (a, b):
        yield a, b
        for process in (a, b):
            assert_no_crash(process.log())


@pytest.fixture
async def opened() -> AsyncIterator[list[Client]]:
    clients: list[Client] = []
    yield clients
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


async def send_message(client: Client, ref: str) -> dict:
    """Send a `message` frame to ci_bot; the ack or error it gets."""
    await client.send({"type": "message", "text": "@ci_bot status?", "ref": ref})
    while True:
        frame = await client.receive()
        if frame["type"] != "ping":
            return frame


async def test_two_connections_on_two_processes_share_the_message_count(pair, opened):
    a, b = pair
    user = fresh_user_id()
    on_a, _ = await connect_user(a.ws, user)
    opened.append(on_a)
    on_b, _ = await connect_user(b.ws, user)
    opened.append(on_b)
    replies = [
        await send_message(client, str(n))
        for n, client in enumerate([on_a, on_b, on_a])
    ]
    assert [r["type"] for r in replies] == ["ack"] * MESSAGES_PER_MINUTE
    # A fresh connection on the other process does not start a fresh count.
    await on_b.close()
    again, _ = await connect_user(b.ws, user)
    opened.append(again)
    error = await send_message(again, "over")
    assert (error["type"], error["code"], error["ref"]) == (
        "error",
        "rate_limited",
        "over",
    )
    assert 1 <= error["retry_after_ms"] <= 60_000


async def test_handshakes_of_one_user_are_counted_across_processes(pair, opened):
    a, b = pair
    user = fresh_user_id()
    for server in (a, b, a):
        client, _ = await connect_user(server.ws, user)
        await client.close()
    refused = await Client.connect(f"{b.ws}/ws?user_id={user}")
    opened.append(refused)
    error = await refused.receive()
    assert (error["type"], error["code"]) == ("error", "rate_limited")
    assert 1 <= error["retry_after_ms"] <= 60_000
    assert await refused.close_code() == 4429
    # Someone else still connects.
    other, _ = await connect_user(b.ws, fresh_user_id())
    opened.append(other)
