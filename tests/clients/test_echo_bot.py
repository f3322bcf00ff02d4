"""examples/echo_bot.py, run as a user would: it answers a mention with a reply
streamed word by word, and keeps answering after its server was restarted."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_client import Message, StreamPart
from bridge_project.embedded_redis import EmbeddedRedis
from tests.clients.conftest import SERVER_ENV
from tests.support.daphne import REPO, DaphneProcess, running_daphnes
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


async def test_the_echo_bot_streams_its_answer_and_survives_a_restart(
    server, clients, tmp_path
):
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_API_KEY"}
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "examples" / "echo_bot.py"),
        "--url",
        server.http,
        "--pause",
        "0.01",
        "--positions",
        str(tmp_path / "positions.json"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert bot.stdout is not None
        while b"is listening" not in await asyncio.wait_for(bot.stdout.readline(), 20):
            pass
        alice = clients(server.ws, user_id=fresh_user_id("alice"))
        parts: list[StreamPart] = []
        answers: list[Message] = []
        alice.on("stream", parts.append)
        alice.on("message", answers.append)
        await alice.connect()

        await alice.send_message("hello there @echo_bot")
        await eventually(lambda: _count(answers, 1), within=10)
        assert answers[0].sender == "echo_bot"
        assert answers[0].text == "You said: hello there @echo_bot "
        assert [p.delta for p in parts] == [
            "You ",
            "said: ",
            "hello ",
            "there ",
            "@echo_bot ",
        ]
        assert {p.id for p in parts} == {answers[0].id}

        await asyncio.to_thread(server.stop, kill=True)
        await asyncio.to_thread(server.start)
        # Both reconnect by themselves; the bot answers again.
        await eventually(lambda: _connected(alice), within=20)
        await eventually(lambda: _sends(alice), within=20)
        await eventually(lambda: _count(answers, 2), within=20)
        assert answers[1].text == "You said: still there? @echo_bot "
        assert bot.returncode is None
    finally:
        if bot.returncode is None:
            bot.terminate()
            await bot.wait()


def _count(items: list, n: int) -> None:
    assert len(items) >= n, f"{len(items)} of {n}"


def _connected(client) -> None:
    assert client.connected


async def _sends(client) -> None:
    # Stored for the bot whether it is back or not: it answers on its resume.
    try:
        await client.send_message("still there? @echo_bot", timeout=2)
    except Exception as refused:
        raise AssertionError(repr(refused)) from refused
