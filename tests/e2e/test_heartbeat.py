"""The heartbeat on real daphne (SPEC §2): a `ping` every interval, and a close
with 4408 for a client silent longer than the timeout; any frame keeps it open.

Interval 1 s, timeout 3 s: a silent client is closed 3 to 4 s after its last
frame (the timeout is checked on each beat).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.logs import assert_no_crash
from tests.support.ws import Client, connect_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

INTERVAL = 1.0
TIMEOUT = 3.0
# How long the chatty clients are watched: past the timeout plus one beat.
WATCH = TIMEOUT + INTERVAL + 0.75


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    workdir = tmp_path_factory.mktemp("heartbeat")
    with running_daphnes(
        redis_server.url,
        workdir,
        1,
        database=migrated_sqlite,
        BRIDGE_HEARTBEAT_INTERVAL=str(INTERVAL),
        BRIDGE_HEARTBEAT_TIMEOUT=str(TIMEOUT),
    ) as (process,):
        yield process
        assert_no_crash(process.log())


async def silent_until_closed(client: Client) -> tuple[list[float], dict, int | None]:
    """Send nothing; returns (arrival times of pings, last frame, close code)."""
    pings: list[float] = []
    last: dict = {}
    try:
        while True:
            frame = await client.receive(timeout=TIMEOUT + 2 * INTERVAL)
            if frame["type"] == "ping":
                assert isinstance(frame["timestamp"], str), frame
                pings.append(time.monotonic())
            last = frame
    except websockets.ConnectionClosed as closed:
        return pings, last, closed.rcvd.code if closed.rcvd else None


async def answering_pings(client: Client) -> list[dict]:
    """Reply `pong` to every `ping` for WATCH seconds; returns the other frames."""
    others = []
    deadline = time.monotonic() + WATCH
    with contextlib.suppress(TimeoutError):
        while (remaining := deadline - time.monotonic()) > 0:
            frame = await client.receive(timeout=remaining)
            if frame["type"] == "ping":
                await client.send({"type": "pong"})
            else:
                others.append(frame)
    return others


async def pinging(client: Client) -> list[dict]:
    """Send a client `ping` every half interval for WATCH seconds; returns the
    frames received other than server pings. (Twice per interval so that a test
    machine stalling this loop for a second does not make the client silent.)"""
    received = []

    async def read() -> None:
        while True:
            frame = await client.receive(timeout=WATCH + 1)
            if frame["type"] != "ping":
                received.append(frame)

    reader = asyncio.ensure_future(read())
    try:
        deadline = time.monotonic() + WATCH
        while time.monotonic() < deadline:
            await client.send({"type": "ping"})
            await asyncio.sleep(INTERVAL / 2)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
    return received


async def test_silent_client_is_pinged_then_closed_with_4408(server):
    client, connected = await connect_user(server.ws, fresh_user_id("quiet"))
    opened = time.monotonic()
    try:
        assert connected["heartbeat_interval"] == 1
        pings, last, code = await silent_until_closed(client)
    finally:
        await client.close()
    closed_after = time.monotonic() - opened

    assert code == 4408
    assert last["type"] == "error" and last["code"] == "heartbeat_timeout", last
    # The client's clock starts a little after the server's: 0.2 s of slack.
    assert TIMEOUT - 0.2 <= closed_after <= TIMEOUT + INTERVAL + 1.0, closed_after
    # One ping per beat until the close: at least two before a 3 s timeout.
    assert len(pings) >= 2, pings
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert all(0.5 * INTERVAL <= gap <= 1.6 * INTERVAL for gap in gaps), gaps


async def test_clients_that_answer_pings_or_ping_stay_open_past_the_timeout(server):
    answering, _ = await connect_user(server.ws, fresh_user_id("pongs"))
    chatty, _ = await connect_user(server.ws, fresh_user_id("pings"))
    try:
        from_answering, from_chatty = await asyncio.gather(
            answering_pings(answering), pinging(chatty)
        )
        assert from_answering == [], from_answering
        assert from_chatty, "a client ping gets a pong"
        assert {frame["type"] for frame in from_chatty} == {"pong"}, from_chatty
        assert all(isinstance(f["timestamp"], str) for f in from_chatty)
        # Still open and served, well past the timeout.
        for client in (answering, chatty):
            await client.send({"type": "ping"})
            assert (await client.receive_type("pong", timeout=2))["type"] == "pong"
    finally:
        await answering.close()
        await chatty.close()
