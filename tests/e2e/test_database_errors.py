"""A database error under a live connection, on real daphne: the connection is
closed with 1011 after an `error` frame, the log has one line and no traceback,
and nothing of the connection is left behind (registry entry, group
subscription, `bridge_connections_open`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support import prometheus
from tests.support.daphne import DaphneProcess, crash_free_daphnes
from tests.support.ids import fresh_user_id
from tests.support.polling import eventually
from tests.support.ws import connect_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    """A server of its own: the test breaks its database for a moment."""
    workdir = tmp_path_factory.mktemp("database-errors")
    with crash_free_daphnes(redis_server.url, workdir, 1, database=migrated_sqlite) as (
        process,
    ):
        yield process


@contextmanager
def messages_table_missing(server: DaphneProcess) -> Iterator[None]:
    """Reading stored frames (a join with the messages table) fails; reading a
    user's newest seq (the inbox table alone) still works."""
    database = server.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        db.execute("ALTER TABLE messaging_message RENAME TO messaging_message_away")
    try:
        yield
    finally:
        with sqlite3.connect(database) as db:
            db.execute("ALTER TABLE messaging_message_away RENAME TO messaging_message")


async def test_a_database_error_during_resume_closes_with_1011_and_leaves_nothing(
    server: DaphneProcess, http: httpx.AsyncClient, redis_server: EmbeddedRedis
):
    user = fresh_user_id("db-error")
    for n in range(3):
        reply = await http.post(
            f"{server.http}/sse/push", json={"user_id": user, "data": {"n": n}}
        )
        assert reply.status_code == 202, reply.text
    log_start = server.log_size()

    with messages_table_missing(server):
        client, connected = await connect_user(server.ws, user, last_seq=0)
        assert connected["last_seq"] == 3
        error = await client.receive()
        code = await client.close_code()

    assert error["type"] == "error"
    assert error["code"] == "unavailable"
    assert code == 1011
    log = server.log(log_start)
    assert "database error on connection" in log
    assert "Traceback" not in log and "Exception inside application" not in log

    async def nothing_left() -> None:
        reply = await http.get(f"{server.http}/api/users/{user}/connections")
        assert reply.status_code == 200, reply.text
        assert reply.json()["connections"] == [], reply.json()
        _, samples = await prometheus.scrape(http, server.http)
        assert prometheus.value(samples, "bridge_connections_open") == 0
        subscribers = redis.Redis.from_url(redis_server.url).pubsub_numsub(
            f"bridge__group__user.{user}"
        )
        assert subscribers[0][1] == 0, subscribers

    await eventually(nothing_left, within=5)
