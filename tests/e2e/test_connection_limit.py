"""BRIDGE_MAX_CONNECTIONS_PER_USER is enforced cluster-wide, and a crashed
process's connections stop counting within two heartbeat intervals (SPEC §2, §6).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.logs import assert_no_crash
from tests.support.ws import Client, connect_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

LIMIT = 5
HEARTBEAT_INTERVAL = 1.0
ENV = {
    "BRIDGE_MAX_CONNECTIONS_PER_USER": str(LIMIT),
    "BRIDGE_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
    "BRIDGE_HEARTBEAT_TIMEOUT": "5",
}


@pytest.fixture(scope="module")
def pair(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    workdir = tmp_path_factory.mktemp("connection-limit")
    with running_daphnes(
        redis_server.url, workdir, 2, database=migrated_sqlite, **ENV
    ) as (a, b):
        yield a, b


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    """Every client a test opens, closed at teardown whatever happened."""
    opened: list[Client] = []
    yield opened
    for client in opened:
        with contextlib.suppress(Exception):
            await client.close()


async def open_connected(
    server: DaphneProcess, user: str, opened: list[Client]
) -> Client:
    client, _ = await connect_user(server.ws, user)
    opened.append(client)
    return client


async def refused_with(server: DaphneProcess, user: str) -> tuple[str, int | None]:
    client = await Client.connect(f"{server.ws}/ws?user_id={user}")
    try:
        frame = await client.receive()
        if frame["type"] != "error":
            return frame["type"], None
        return frame["code"], await client.close_code()
    finally:
        await client.close()


TOO_MANY = ("too_many_connections", 4429)


async def accepted_within(
    server: DaphneProcess, user: str, opened: list[Client], seconds: float
) -> float:
    """Retry a handshake until accepted; returns how long it took."""
    started = time.monotonic()
    while True:
        client = await Client.connect(f"{server.ws}/ws?user_id={user}")
        frame = await client.receive()
        if frame["type"] == "connected":
            opened.append(client)
            return time.monotonic() - started
        assert (frame["code"], await client.close_code()) == TOO_MANY
        await client.close()
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"still refused after {elapsed:.1f}s"
        await asyncio.sleep(0.1)


async def test_sixth_connection_on_either_process_is_refused_with_4429(pair, clients):
    a, b = pair
    user = fresh_user_id("limit")
    for server in (a, b, a, b, a):
        await open_connected(server, user, clients)
    assert await refused_with(a, user) == TOO_MANY
    assert await refused_with(b, user) == TOO_MANY
    # The limit is per user: someone else connects as usual.
    await open_connected(a, fresh_user_id("other"), clients)

    # Closing one connection (on B) frees exactly one place (on A).
    closing = clients.pop(1)
    await closing.close()
    await accepted_within(a, user, clients, seconds=3)
    assert await refused_with(b, user) == TOO_MANY
    assert_no_crash(a.log())
    assert_no_crash(b.log())


async def test_simultaneous_handshakes_never_admit_more_than_the_limit(pair, clients):
    a, b = pair
    user = fresh_user_id("race")
    attempts = await asyncio.gather(
        *(Client.connect(f"{s.ws}/ws?user_id={user}") for s in [a, b] * 6)
    )
    clients.extend(attempts)
    frames = await asyncio.gather(*(c.receive() for c in attempts))
    kinds = sorted(f["type"] if f["type"] != "error" else f["code"] for f in frames)
    assert kinds == ["connected"] * LIMIT + ["too_many_connections"] * 7


async def test_killed_process_connections_stop_counting_within_two_intervals(
    pair, clients, tmp_path
):
    a, _ = pair
    doomed = DaphneProcess(a.env, tmp_path / "doomed.log").start()
    try:
        user = fresh_user_id("crash")
        for _ in range(LIMIT):
            await open_connected(doomed, user, clients)
        assert await refused_with(a, user) == TOO_MANY
        doomed.stop(kill=True)
        took = await accepted_within(a, user, clients, seconds=4)
    finally:
        doomed.stop(kill=True)
    # Entries live two intervals after their last refresh; allow scheduling slack.
    assert took <= 2 * HEARTBEAT_INTERVAL + 0.5, f"took {took:.2f}s"
