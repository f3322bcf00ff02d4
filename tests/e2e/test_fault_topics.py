"""A Redis restart mid-stream leaves no topic subscriber deaf and loses nothing
(SPEC §5 guarantees applied to topics, §8).

Two daphne processes with a one-second heartbeat; subscribers to one topic on
both. Pushes to the topic at about 20 per second for 25 s, alternating between
the processes; Redis is SIGKILLed after 10 s and restarted empty 5 s later.
Every 202 reaches every subscriber exactly once, in seq order, without any of
them reconnecting or subscribing again; the topic's presence is rebuilt by the
heartbeat (the last push counts every subscriber again).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.test_fault_redis_restart import (
    HEARTBEAT,
    LAYER_LOGGERS,
    REPLY_DEADLINE,
    KillAndRestartEmpty,
    Timeline,
    _outage,
)
from tests.support.daphne import DaphneProcess
from tests.support.ledger import LedgerClient
from tests.support.logs import assert_no_crash
from tests.support.polling import eventually
from tests.support.topics import create_topics, fresh_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

SUBSCRIBERS_PER_PROCESS = 5
PUSHES_PER_SECOND = 20
PUSHING_SECONDS = 25.0
CONVERGENCE_SECONDS = 5.0


@dataclass(frozen=True)
class Accepted:
    seq: int


@pytest.fixture(autouse=True)
def quiet_httpx(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="httpx")


async def _subscribed(client: LedgerClient, topic: str) -> None:
    await client.connection.send(json.dumps({"type": "subscribe", "topic": topic}))

    def answered() -> None:
        assert any(f.get("type") == "subscribed" for f in client.others)

    await eventually(answered, within=10)


async def _push_steadily(servers, topic: str, results: dict[str, object]) -> None:
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=REPLY_DEADLINE + 1, limits=limits) as http:

        async def push(n: int, server: DaphneProcess) -> None:
            body = {"topic": topic, "data": {"marker": f"m{n}"}}
            try:
                async with asyncio.timeout(REPLY_DEADLINE):
                    reply = await http.post(f"{server.http}/sse/push", json=body)
            except (TimeoutError, httpx.HTTPError) as exc:
                results[f"m{n}"] = type(exc).__name__
                return
            results[f"m{n}"] = (
                Accepted(reply.json()["seq"])
                if reply.status_code == 202
                else reply.status_code
            )

        tasks, started, n = [], time.monotonic(), 0
        while (now := time.monotonic()) < started + PUSHING_SECONDS:
            tasks.append(asyncio.create_task(push(n, servers[n % 2])))
            n += 1
            await asyncio.sleep(max(0.0, started + n / PUSHES_PER_SECOND - now))
        await asyncio.gather(*tasks)


async def test_redis_killed_mid_stream_leaves_no_topic_subscriber_deaf(
    daphne_factory, redis_restartable
):
    a = daphne_factory(**HEARTBEAT)
    b = daphne_factory(**HEARTBEAT)
    namespace = fresh_namespace("fault")
    create_topics(a.env, {namespace: {"subscribe": "public"}})
    topic = f"{namespace}:stream"
    clients = [
        await LedgerClient.open(server.ws, f"sub{n}-{name}", f"sub{n}@{name}")
        for n in range(SUBSCRIBERS_PER_PROCESS)
        for name, server in (("A", a), ("B", b))
    ]
    marks = [server.log_size() for server in (a, b)]
    results: dict[str, object] = {}
    try:
        for client in clients:
            await _subscribed(client, topic)
        await asyncio.gather(
            _push_steadily((a, b), topic, results),
            _outage(KillAndRestartEmpty(redis_restartable), Timeline()),
        )
        accepted = {m: r.seq for m, r in results.items() if isinstance(r, Accepted)}
        statuses = Counter(
            "202" if isinstance(r, Accepted) else str(r) for r in results.values()
        )

        def everyone_has_everything() -> None:
            assert all(set(accepted) <= set(c.markers()) for c in clients)

        converged = True
        try:
            await eventually(everyone_has_everything, within=CONVERGENCE_SECONDS)
        except AssertionError:
            converged = False
        await asyncio.sleep(1.0)  # late duplicates would show up here
        async with httpx.AsyncClient(timeout=REPLY_DEADLINE) as http:
            last = await http.post(
                f"{a.http}/sse/push", json={"topic": topic, "data": {"marker": "end"}}
            )
        logs = [s.log(since=m) for s, m in zip((a, b), marks, strict=True)]
        still_open = {c.label: c.open_now for c in clients}
    finally:
        for client in clients:
            await client.close()

    print(f"\nTOPIC FAULT SUMMARY: {dict(statuses)} accepted={len(accepted)}")
    assert set(statuses) <= {"202", "503"}, statuses
    assert statuses["202"] >= PUSHES_PER_SECOND * 10
    assert statuses["503"] >= 1  # refused while Redis was known to be down
    assert converged, {
        c.label: sorted(set(accepted) - set(c.markers()))[:10] for c in clients
    }
    for client in clients:
        got = [m for m in client.markers() if m != "end"]
        assert len(got) == len(set(got)), f"{client.label}: duplicates"
        assert set(got) == set(accepted), f"{client.label}: unexpected markers"
        seqs = [
            s
            for s, m in zip(client.seqs(), client.markers(), strict=True)
            if m != "end"
        ]
        assert seqs == sorted(accepted.values()), f"{client.label}: seqs"
        assert still_open[client.label], client.label
        assert [f["type"] for f in client.others] == ["subscribed"], client.others
    # Presence of the topic was rebuilt by the heartbeat after the flush.
    assert last.status_code == 202, last.text
    assert last.json()["subscribers"] == 2 * SUBSCRIBERS_PER_PROCESS
    for log in logs:
        assert '" 500 ' not in log
        assert_no_crash(log, allowed_loggers=LAYER_LOGGERS)
