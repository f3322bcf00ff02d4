"""`GET /api/stats` lists every instance from the moment it serves, with its
connections (SPEC §6; issue 12 item 11).

The processes here beat once an hour, so the heartbeat cannot be what lists
them or counts their connections: an instance registers itself on its first
event (daphne_factory waits for its /health), rewrites its entry when its
connection count changes, and refreshes it every interval with or without
connections (messaging/realtime/instance_registry.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.support.cluster import FAST_HEARTBEAT, INTERVAL, instance_name
from tests.support.daphne import DaphneProcess
from tests.support.ids import fresh_user_id
from tests.support.polling import eventually
from tests.support.ws import connect_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

HOURLY_HEARTBEAT = {
    "BRIDGE_HEARTBEAT_INTERVAL": "3600",
    "BRIDGE_HEARTBEAT_TIMEOUT": "7200",
}
# Far below the hour a heartbeat would take.
WITHIN = 10.0


async def _listed(
    http: httpx.AsyncClient, asked: DaphneProcess, process: DaphneProcess
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(stats from `asked`, the entry of `process`), failing when it is absent."""
    reply = await http.get(f"{asked.http}/api/stats")
    assert reply.status_code == 200, reply.text
    stats = reply.json()
    by_name = {entry["instance"]: entry for entry in stats["instances"]}
    assert instance_name(process) in by_name, stats
    return stats, by_name[instance_name(process)]


async def test_a_fresh_instance_and_its_connections_are_in_stats_at_once(
    daphne_factory, http
):
    a = daphne_factory(**HOURLY_HEARTBEAT)
    b = daphne_factory(**HOURLY_HEARTBEAT)  # fresh: served only its health check

    _, entry = await eventually(lambda: _listed(http, a, b), within=WITHIN)
    assert entry["connections"] == 0

    user = fresh_user_id("fresh")
    sockets = [(await connect_user(b.ws, user))[0] for _ in range(2)]
    try:

        async def two_on_b() -> dict[str, Any]:
            stats, entry = await _listed(http, a, b)
            assert entry["connections"] == 2, stats
            return stats

        stats = await eventually(two_on_b, within=WITHIN)
        assert stats["total_connections"] == sum(
            i["connections"] for i in stats["instances"]
        )
        assert stats["total_connections"] >= 2

        await sockets.pop().close()

        async def one_on_b() -> None:
            stats, entry = await _listed(http, a, b)
            assert entry["connections"] == 1, stats

        await eventually(one_on_b, within=WITHIN)
    finally:
        for socket in sockets:
            await socket.close()


async def test_an_instance_without_connections_stays_listed(daphne_factory, http):
    # With a one-second heartbeat, an entry expires two seconds after its last
    # write; an instance that only answers HTTP must keep writing it.
    a = daphne_factory(**FAST_HEARTBEAT)
    b = daphne_factory(**FAST_HEARTBEAT)
    await eventually(lambda: _listed(http, a, b), within=WITHIN)

    for _ in range(4):
        await asyncio.sleep(INTERVAL)
        await _listed(http, a, b)
