"""Client frames that are refused, and frames over the size limit (SPEC §2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.logs import assert_no_crash
from tests.support.ws import connect_user

pytestmark = pytest.mark.e2e

MAX_FRAME_BYTES = 2048


@pytest.fixture(scope="module")
def small_frames(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    """One daphne with BRIDGE_MAX_FRAME_BYTES=2048, shared by this module."""
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("frames"),
        1,
        database=migrated_sqlite,
        BRIDGE_MAX_FRAME_BYTES=str(MAX_FRAME_BYTES),
    ) as (server,):
        yield server


async def test_frame_over_the_limit_closes_with_1009(small_frames):
    mark = small_frames.log_size()
    client, _ = await connect_user(small_frames.ws, fresh_user_id())
    await client.send("x" * 5000)
    assert await client.close_code() == 1009
    assert_no_crash(small_frames.log(since=mark))


async def test_json_frame_over_the_limit_closes_with_1009(small_frames):
    mark = small_frames.log_size()
    client, _ = await connect_user(small_frames.ws, fresh_user_id())
    await client.send({"type": "ping", "padding": "x" * (MAX_FRAME_BYTES + 100)})
    assert await client.close_code() == 1009
    assert_no_crash(small_frames.log(since=mark))


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param("{not json", "invalid_json", id="invalid_json"),
        pytest.param(b'{"type": "ping"}', "invalid_frame", id="binary_frame"),
        pytest.param({"type": "subscribe"}, "invalid_frame", id="unknown_type"),
        pytest.param([1, 2], "invalid_frame", id="not_an_object"),
        pytest.param("[" * 1500, "invalid_json", id="deeply_nested"),
    ],
)
async def test_refused_frame_gets_error_and_connection_stays_open(
    small_frames, frame, code
):
    mark = small_frames.log_size()
    client, _ = await connect_user(small_frames.ws, fresh_user_id())
    await client.send(frame)
    error = await client.receive_type("error")
    assert error["code"] == code, error
    assert error["message"]
    await client.send({"type": "ping"})
    assert (await client.receive_type("pong"))["timestamp"]
    assert client.connection.close_code is None
    await client.close()
    assert_no_crash(small_frames.log(since=mark))
