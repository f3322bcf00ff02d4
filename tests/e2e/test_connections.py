"""Many simultaneous WebSocket handshakes on one daphne (SPEC §2)."""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.logs import assert_no_crash
from tests.support.ws import Client, connect_user

pytestmark = pytest.mark.e2e

CONNECTIONS = 500


@pytest.fixture
def open_file_limit_raised() -> Iterator[None]:
    """500 client sockets here and 500 in daphne (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def crowd_server(
    open_file_limit_raised: None, redis_server, migrated_sqlite, tmp_path
) -> Iterator[DaphneProcess]:
    """Started after the limit was raised, so that daphne inherits it."""
    with running_daphnes(redis_server.url, tmp_path, 1, database=migrated_sqlite) as (
        process,
    ):
        yield process


async def test_500_simultaneous_connects_all_succeed_and_receive_pushes(
    crowd_server,
):
    server = crowd_server
    users = [fresh_user_id(f"crowd{n}") for n in range(CONNECTIONS)]
    outcomes = await asyncio.gather(
        *(connect_user(server.ws, user) for user in users), return_exceptions=True
    )
    failures = Counter(repr(o) for o in outcomes if isinstance(o, BaseException))
    clients: list[Client] = [o[0] for o in outcomes if not isinstance(o, BaseException)]
    try:
        assert not failures, f"{failures.total()} of {CONNECTIONS} failed: {failures}"
        assert [o[1]["user_id"] for o in outcomes] == users
        target = users[CONNECTIONS // 2]
        async with httpx.AsyncClient(timeout=10) as http:
            reply = await http.post(
                f"{server.http}/sse/push", json={"user_id": target, "message": "hi"}
            )
        assert reply.status_code == 202, reply.text
        frame = await clients[CONNECTIONS // 2].receive_type("message")
        assert (frame["to"], frame["id"]) == (target, reply.json()["id"])
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    assert_no_crash(server.log())
