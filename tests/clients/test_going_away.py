"""A server shutting down says when to come back (`going_away` with
`retry_after_ms`, close 1001, SPEC §11); the client waits exactly that, not its
own backoff."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_client import Backoff, State, StateChange
from bridge_project.embedded_redis import EmbeddedRedis
from tests.clients.conftest import SERVER_ENV
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.polling import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


@pytest.fixture
def server(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path: Path
) -> Iterator[DaphneProcess]:
    with running_daphnes(
        redis_server.url, tmp_path, 1, database=migrated_sqlite, **SERVER_ENV
    ) as (process,):
        yield process


async def test_the_reconnect_waits_retry_after_ms_not_the_backoff(server, clients):
    # Any delay of the client's own would be 10 s; the hint is at most 5 s.
    client = clients(
        server.ws,
        user_id=fresh_user_id("away"),
        backoff=Backoff(minimum=10, maximum=10),
    )
    errors: list[dict] = []
    states: list[tuple[float, StateChange]] = []
    client.on("error", errors.append)
    client.on("state", lambda change: states.append((time.monotonic(), change)))
    await client.connect()
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)

    def tried_again() -> tuple[float, float]:
        kinds = [(c.state, c.code) for _, c in states]
        assert (State.DISCONNECTED, 1001) in kinds, kinds
        closed = kinds.index((State.DISCONNECTED, 1001))
        assert kinds[closed + 1 :][:1] == [(State.CONNECTING, None)], kinds
        return states[closed][0], states[closed + 1][0]

    closed_at, retried_at = await eventually(tried_again, within=8)
    (going_away,) = errors
    assert going_away["code"] == "going_away"
    waited = retried_at - closed_at
    hint = going_away["retry_after_ms"] / 1000
    print(f"\nretry_after_ms={going_away['retry_after_ms']} waited={waited:.3f}s")
    assert hint - 0.02 <= waited <= hint + 0.3
