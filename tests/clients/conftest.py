"""Fixtures for the Python client's tests: real daphne processes, the suite's
Redis, and `bridge_client` as a user would run it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from bridge_client import Client
from bridge_project.embedded_redis import EmbeddedRedis
from tests.e2e.conftest import http, migrated_sqlite  # noqa: F401 - fixtures
from tests.support.daphne import DaphneProcess, running_daphnes

NAMESPACES = {
    "room": {"subscribe": "public", "client_publish": "subscribers"},
}
# A one-second heartbeat: pings (and catch-up) every second.
SERVER_ENV = {
    "BRIDGE_TOPIC_NAMESPACES": json.dumps(NAMESPACES),
    "BRIDGE_HEARTBEAT_INTERVAL": "1",
    "PUBLIC_ACCOUNTS": "echo_bot",
}


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    """One daphne in open mode, shared by a module's tests (fresh user ids)."""
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("clients"),
        1,
        database=migrated_sqlite,
        **SERVER_ENV,
    ) as (process,):
        yield process


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., Client]]:
    """Make `Client`s that are closed at teardown, pass or fail."""
    made: list[Client] = []

    def make(url: str, **kwargs) -> Client:
        client = Client(url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
