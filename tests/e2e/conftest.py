"""End-to-end fixtures: daphne processes shared by the tests of one module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, migrated_database, running_daphnes
from tests.support.ws import Client


@pytest.fixture(scope="session")
def migrated_sqlite(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A migrated SQLite file, migrated once per session and copied per server."""
    path = tmp_path_factory.mktemp("template") / "bridge.sqlite3"
    return migrated_database(redis_server.url, path)


@pytest.fixture(scope="module")
def cluster(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    """Two daphne processes (A, B) sharing the suite's Redis and one SQLite file.

    Module-scoped to keep the suite fast: tests sharing it use fresh user ids
    (`tests.support.ids.fresh_user_id`), so seqs start at 1 for each test.
    """
    workdir = tmp_path_factory.mktemp("cluster")
    with running_daphnes(
        redis_server.url,
        workdir,
        2,
        database=migrated_sqlite,
        # test_delivery sends 200 pushes at once, 100 to each process: over the
        # default cap of 64 in flight, which would answer some of them 503
        # (the cap itself: tests/test_asgi_handler.py).
        BRIDGE_MAX_REQUESTS_IN_FLIGHT="128",
    ) as (a, b):
        yield a, b


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    """One daphne process with default settings, shared by one module's tests."""
    workdir = tmp_path_factory.mktemp("server")
    with running_daphnes(redis_server.url, workdir, 1, database=migrated_sqlite) as (
        process,
    ):
        yield process


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def sockets() -> AsyncIterator[list[Client]]:
    """WebSocket clients opened by a test; all closed at teardown, pass or fail."""
    opened: list[Client] = []
    yield opened
    for client in opened:
        await client.close()
