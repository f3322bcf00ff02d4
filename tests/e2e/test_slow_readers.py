"""Slow readers on real daphne (SPEC §11, 4008 `slow_client`).

A client that stops reading its socket while pushes keep coming is closed once
more than BRIDGE_MAX_PENDING_BYTES wait unsent for it; resuming with `last_seq`
delivers every message exactly once; a replay to such a client waits for the
socket to drain instead of buffering the backlog; and pongs to a ping flood
from a client that does not read never surface as an error in the log.

The stalled client is a `websockets` client on a socket with a small receive
buffer whose reader pauses once one frame is unread (max_queue=1), so the
server's writes back up into its own buffers, as with a client that hangs.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import websockets

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, crash_free_daphnes
from tests.support.ids import fresh_user_id
from tests.support.polling import eventually
from tests.support.ws import connect_user, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

MAX_PENDING = 1024 * 1024  # the default BRIDGE_MAX_PENDING_BYTES
DRAIN_TIMEOUT = 2.0
BLOB = "x" * 60_000  # about 60 KB per push
# Enough to fill the kernel's socket buffers on both sides (a few MB on
# loopback) and then the budget several times over.
PUSHES = 300


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    workdir = tmp_path_factory.mktemp("slow-readers")
    with crash_free_daphnes(
        redis_server.url,
        workdir,
        1,
        database=migrated_sqlite,
        BRIDGE_DRAIN_TIMEOUT=str(DRAIN_TIMEOUT),
        # Let the ping flood reach the send budget before the per-connection
        # ping limit (where there is one) refuses it.
        BRIDGE_CLIENT_CONTROL_FRAMES_PER_MINUTE="100000000",
    ) as (process,):
        yield process


async def stalled_client(
    server: DaphneProcess, user: str, **query: Any
) -> tuple[websockets.ClientConnection, dict]:
    """A connected client that reads its `connected` frame and then stops."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    params = "&".join([f"user_id={user}", *(f"{k}={v}" for k, v in query.items())])
    connection = await websockets.connect(
        f"{server.ws}/ws?{params}",
        sock=sock,
        max_queue=1,
        ping_interval=None,
        open_timeout=10,
    )
    connected = json.loads(await asyncio.wait_for(connection.recv(), 10))
    assert connected["type"] == "connected", connected
    return connection, connected


async def read_until_closed(connection: websockets.ClientConnection):
    """Everything the server still delivers: message seqs, other frames, close."""
    seqs: list[int] = []
    others: list[dict] = []
    try:
        while True:
            frame = json.loads(await asyncio.wait_for(connection.recv(), 10))
            if frame["type"] == "message":
                seqs.append(frame["seq"])
            elif frame["type"] != "ping":
                others.append(frame)
    except websockets.ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd is not None else None
    return seqs, others, code


def closed_as_slow(server: DaphneProcess, connection_id: str) -> None:
    lines = [
        line
        for line in server.log().splitlines()
        if "disconnect" in line and connection_id in line
    ]
    assert any("code=4008" in line for line in lines), lines or "still connected"


async def push(http: httpx.AsyncClient, server: DaphneProcess, user: str, n: int):
    reply = await http.post(
        f"{server.http}/sse/push",
        json={"user_id": user, "data": {"n": n, "blob": BLOB}},
    )
    assert reply.status_code == 202, reply.text
    return reply.json()["recipients"][0]["seq"]


async def resume_and_collect(
    server: DaphneProcess, user: str, last_seq: int, total: int
) -> list[int]:
    client, connected = await connect_user(server.ws, user, last_seq=last_seq)
    try:
        assert connected["last_seq"] == total
        frames = await receive_messages(client, total - last_seq)
        return [frame["seq"] for frame in frames]
    finally:
        await client.close()


def rss(server: DaphneProcess) -> int:
    assert server.process is not None
    return psutil.Process(server.process.pid).memory_info().rss


async def warmed_up_rss(http: httpx.AsyncClient, server: DaphneProcess) -> int:
    """RSS after the same pushes to a user nobody listens as: what a push costs
    the process by itself is then already counted."""
    user = fresh_user_id("nobody")
    for n in range(1, PUSHES + 1):
        await push(http, server, user, n)
    return rss(server)


async def test_a_client_that_stops_reading_is_closed_with_4008_and_loses_nothing(
    server: DaphneProcess, http: httpx.AsyncClient
):
    user = fresh_user_id("stalled")
    before = await warmed_up_rss(http, server)
    connection, connected = await stalled_client(server, user)
    for n in range(1, PUSHES + 1):
        await push(http, server, user, n)
    await eventually(
        lambda: closed_as_slow(server, connected["connection_id"]), within=10
    )
    grown = rss(server) - before
    print(f"RSS grew by {grown / 1e6:.1f} MB with a stalled client")

    # As far as the client can still read it: what was written before the close.
    seqs, others, code = await read_until_closed(connection)
    assert seqs == list(range(1, len(seqs) + 1))
    if code is not None:  # the close frame made it out before the socket ended
        assert code == 4008
        assert others[-1]["type"] == "error"
        assert others[-1]["code"] == "slow_client"

    resumed = await resume_and_collect(server, user, len(seqs), PUSHES)
    assert sorted(seqs + resumed) == list(range(1, PUSHES + 1))
    assert len(seqs + resumed) == PUSHES  # exactly once
    # 18 MB were pushed to the stalled client; the server kept well under that.
    assert grown < 12 * MAX_PENDING, f"RSS grew by {grown / 1e6:.1f} MB"


async def test_a_resume_to_a_client_that_does_not_read_waits_then_closes_with_4008(
    server: DaphneProcess, http: httpx.AsyncClient
):
    """The replay is paced: it stops at the budget and, with nothing drained
    within BRIDGE_DRAIN_TIMEOUT, closes instead of buffering the backlog."""
    user = fresh_user_id("stalled-resume")
    for n in range(1, PUSHES + 1):
        await push(http, server, user, n)
    before = rss(server)
    connection, connected = await stalled_client(server, user, last_seq=0)
    await eventually(
        lambda: closed_as_slow(server, connected["connection_id"]), within=20
    )
    grown = rss(server) - before

    seqs, _, _ = await read_until_closed(connection)
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) < PUSHES
    resumed = await resume_and_collect(server, user, len(seqs), PUSHES)
    assert sorted(seqs + resumed) == list(range(1, PUSHES + 1))
    assert len(seqs + resumed) == PUSHES
    assert grown < 12 * MAX_PENDING, f"RSS grew by {grown / 1e6:.1f} MB"


async def test_a_resume_to_a_reading_client_delivers_a_backlog_larger_than_the_budget(
    server: DaphneProcess, http: httpx.AsyncClient
):
    user = fresh_user_id("big-resume")
    for n in range(1, 61):  # about 3.6 MB, more than three budgets
        await push(http, server, user, n)
    assert await resume_and_collect(server, user, 0, 60) == list(range(1, 61))


async def test_a_ping_flood_from_a_client_that_does_not_read_leaves_no_traceback(
    server: DaphneProcess,
):
    """Pongs pile up unsent until 4008; those answering pings that arrive while
    the socket closes are dropped quietly (the module's fixture checks the log)."""
    user = fresh_user_id("ping-flood")
    connection, connected = await stalled_client(server, user)
    ping = json.dumps({"type": "ping"})
    with pytest.raises(websockets.ConnectionClosed):
        while True:  # until the server closes the socket
            await connection.send(ping)
    await eventually(
        lambda: closed_as_slow(server, connected["connection_id"]), within=10
    )
