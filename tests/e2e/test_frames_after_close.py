"""A frame queued behind a server-side close (found by the frame fuzzer).

A client that writes `{"type": "disconnect"}` (or a frame over the size
limit) and a `ping` in one go: the server closes (1000, 1009), then handles
the queued `ping` and sends `pong` on a closing socket. autobahn raises
`Disconnected` there (daphne only drops sends once the TCP connection is
gone), the consumer dies with "Exception inside application", its
`disconnect()` never runs, and the user stays listed online.

Fixed by bridge_project/daphne_send_window.py (a send while the socket is
closing is dropped) and the consumer's one cleanup path (issue 12 items 2, 7).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.logs import crashes
from tests.support.polling import eventually
from tests.support.raw_ws import TEXT, RawWebSocket, ServerClosed, encode_frame

pytestmark = pytest.mark.e2e

PING = encode_frame(TEXT, b'{"type": "ping"}')


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("after-close"),
        1,
        database=migrated_sqlite,
    ) as (process,):
        yield process


async def close_code_after(server: DaphneProcess, user: str, wire: bytes) -> int:
    socket = await RawWebSocket.connect(f"{server.ws}/ws?user_id={user}")
    assert (await socket.receive())["type"] == "connected"
    await socket.send_raw(wire)
    try:
        while True:
            await socket.receive()
    except ServerClosed as closed:
        code = closed.code
    await socket.close()
    return code


async def assert_left_presence(server: DaphneProcess, user: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:

        async def check() -> None:
            reply = await http.get(f"{server.http}/api/users/{user}/connections")
            assert reply.json()["connections"] == [], reply.text

        await eventually(check, within=10)


@pytest.mark.parametrize(
    ("first", "code"),
    [
        pytest.param(b'{"type": "disconnect"}', 1000, id="disconnect"),
        pytest.param(b"x" * 70000, 1009, id="over-the-frame-limit"),
    ],
)
async def test_a_ping_queued_behind_a_close_crashes_nothing_and_leaks_nothing(
    server: DaphneProcess, first: bytes, code: int
) -> None:
    mark = server.log_size()
    user = fresh_user_id()
    wire = encode_frame(TEXT, first) + PING
    assert await close_code_after(server, user, wire) == code
    await assert_left_presence(server, user)
    assert not crashes(server.log(since=mark))
