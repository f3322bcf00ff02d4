"""Redis down and back: clean 503s and 1013s, then recovery (SPEC §2, §6).

Each test stops the suite's Redis; `redis_restartable` starts it again after.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.daphne import DaphneProcess
from tests.support.ids import fresh_user_id
from tests.support.logs import assert_no_crash
from tests.support.ws import Client, assert_no_message, connect_user

pytestmark = pytest.mark.e2e

OUTAGE_DEADLINE = 5.0
# channels_redis logs its lost subscriber connection with a traceback every
# second while Redis is down; expected here, any other traceback is not.
LAYER_LOGGERS = ("channels_redis.pubsub",)


async def wait_until_healthy(server: DaphneProcess, within: float = 10.0) -> None:
    """/health answers 200 within `within` s, and only 200 or 503 until then."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=OUTAGE_DEADLINE) as http:
        while (health := await http.get(f"{server.http}/health")).status_code != 200:
            assert health.status_code == 503, health.text
            assert time.monotonic() < deadline, f"still unhealthy: {health.text}"
            await asyncio.sleep(0.2)
    assert health.json()["checks"]["channel_layer"] == "ok"


def assert_clean(server: DaphneProcess, mark: int) -> None:
    """This test's part of the log shows no crash and no 500."""
    log = server.log(since=mark)
    assert '" 500 ' not in log
    assert_no_crash(log, allowed_loggers=LAYER_LOGGERS)


async def _timed(request) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def test_push_and_batch_answer_503_within_5s_while_redis_is_down(
    server, redis_restartable
):
    await wait_until_healthy(server)  # the outage starts from a healthy service
    mark = server.log_size()
    user = fresh_user_id("outage")
    redis_restartable.stop(kill=True)
    async with httpx.AsyncClient(timeout=10, base_url=server.http) as http:
        push, elapsed = await _timed(
            http.post("/sse/push", json={"user_id": user, "data": 1})
        )
        assert push.status_code == 503, push.text
        assert push.json()["error"] == "unavailable"
        assert push.json()["message"]
        assert elapsed < OUTAGE_DEADLINE

        batch, elapsed = await _timed(
            http.post(
                "/sse/push/batch", json={"messages": [{"user_id": user, "data": 2}]}
            )
        )
        assert batch.status_code == 503, batch.text
        assert batch.json()["error"] == "unavailable"
        assert elapsed < OUTAGE_DEADLINE

    # A 503 means nothing was accepted: once Redis is back, nothing is stored.
    redis_restartable.start()
    await wait_until_healthy(server)
    client, connected = await connect_user(server.ws, user, last_seq=0)
    assert connected["last_seq"] == 0
    await assert_no_message(client, wait=0.5)
    await client.close()
    assert_clean(server, mark)


async def test_health_answers_503_within_5s_while_redis_is_down(
    server, redis_restartable
):
    await wait_until_healthy(server)  # the outage starts from a healthy service
    mark = server.log_size()
    redis_restartable.stop(kill=True)
    async with httpx.AsyncClient(timeout=10) as http:
        health, elapsed = await _timed(http.get(f"{server.http}/health"))
    assert health.status_code == 503, health.text
    assert health.json()["status"] == "unavailable"
    assert health.json()["checks"]["database"] == "ok"
    assert health.json()["checks"]["channel_layer"].startswith("error")
    assert elapsed < OUTAGE_DEADLINE
    assert_clean(server, mark)


async def test_handshake_gets_unavailable_then_close_1013_while_redis_is_down(
    server, redis_restartable
):
    await wait_until_healthy(server)  # the outage starts from a healthy service
    mark = server.log_size()
    redis_restartable.stop(kill=True)
    started = time.monotonic()
    client = await Client.connect(f"{server.ws}/ws?user_id={fresh_user_id()}")
    error = await client.receive(timeout=OUTAGE_DEADLINE)
    assert (error["type"], error["code"]) == ("error", "unavailable"), error
    assert await client.close_code(timeout=OUTAGE_DEADLINE) == 1013
    assert time.monotonic() - started < OUTAGE_DEADLINE
    assert_clean(server, mark)


async def test_health_connections_and_pushes_work_again_after_redis_restarts(
    server, redis_restartable
):
    await wait_until_healthy(server)  # the outage starts from a healthy service
    mark = server.log_size()
    user = fresh_user_id("recovered")
    async with httpx.AsyncClient(timeout=10, base_url=server.http) as http:
        redis_restartable.stop(kill=True)
        down = await http.get("/health")
        assert down.status_code == 503, down.text
        redis_restartable.start()

        await wait_until_healthy(server)

        client, _ = await connect_user(server.ws, user)
        push = await http.post("/sse/push", json={"user_id": user, "data": "back"})
        assert push.status_code == 202, push.text
        frame = await client.receive_type("message")
        assert (frame["id"], frame["data"]) == (push.json()["id"], "back")
        await client.close()
    assert_clean(server, mark)
