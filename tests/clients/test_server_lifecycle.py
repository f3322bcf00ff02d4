"""The client and its server's process: a server shutting down says when to
come back (`going_away` with `retry_after_ms`, close 1001, SPEC §11) and the
client waits exactly that, not its own backoff; a server that stops answering
(SIGSTOP: the socket stays open, nothing comes) is found dead and replaced."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_client import (
    PERSONAL,
    AckTimeout,
    Backoff,
    BridgeHTTP,
    Message,
    Positions,
    State,
    StateChange,
    Truncated,
)
from bridge_project.embedded_redis import EmbeddedRedis
from tests.clients.conftest import SERVER_ENV
from tests.support.credentials import manage
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.polling import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


@pytest.fixture
def server(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path: Path
) -> Iterator[DaphneProcess]:
    with running_daphnes(
        redis_server.url,
        tmp_path,
        1,
        database=migrated_sqlite,
        # Only purge_messages applies it (the retention test runs it).
        BRIDGE_HISTORY_MAX_PER_USER="3",
        **SERVER_ENV,
    ) as (process,):
        try:
            yield process
        finally:  # never leave it stopped
            if process.process is not None:
                process.process.send_signal(signal.SIGCONT)


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


async def test_a_server_that_sends_nothing_is_found_dead_and_replaced(server, clients):
    user = fresh_user_id("dead")
    # Dead after heartbeat_interval (1 s) + 1 s without a frame.
    client = clients(
        server.ws,
        user_id=user,
        dead_margin=1,
        open_timeout=1,
        backoff=Backoff(minimum=0.2, maximum=0.5),
    )
    got: list[Message] = []
    client.on("message", got.append)
    await client.connect()
    first = client.connection_id
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        with pytest.raises(AckTimeout):
            await client.send_message("anyone? @echo_bot", timeout=0.5)
        await eventually(lambda: _dead(client), within=6)
        found_after = time.monotonic() - stopped_at
    finally:
        server.process.send_signal(signal.SIGCONT)
    await eventually(lambda: _replaced(client, first), within=10)
    with BridgeHTTP(server.http) as http:
        http.push(user_id=user, message="back")
    await eventually(lambda: _count(got, 1), within=5)
    print(f"\nfound dead after {found_after:.2f}s")
    assert 2.0 <= found_after < 4.0


async def test_a_resume_past_retention_reports_history_truncated(server, clients):
    user = fresh_user_id("purged")
    with BridgeHTTP(server.http) as http:
        for n in range(6):
            http.push(user_id=user, message=str(n))
    purged = manage(server.env, "purge_messages")
    assert purged.returncode == 0, purged.stderr
    # A client that saw nothing yet (saved at seq 0) resumes: 1-3 are gone.
    client = clients(server.ws, user_id=user, positions=Positions(personal=0))
    events: list[Truncated | Message] = []
    client.on("history_truncated", events.append)
    client.on("message", events.append)
    await client.connect()
    await eventually(lambda: _count(events, 4), within=5)
    assert events[0] == Truncated(PERSONAL, 4)
    assert [m.seq for m in events[1:]] == [4, 5, 6]  # type: ignore[union-attr]


def _dead(client) -> None:
    assert client.stats["dead_connections"] >= 1


def _replaced(client, first: str | None) -> None:
    assert client.connected and client.connection_id != first


def _count(items: list, n: int) -> None:
    assert len(items) >= n
