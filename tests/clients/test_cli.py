"""`python -m bridge_client` against a live server (open mode): listen, push,
token, reading BRIDGE_URL; and the README's bot, run as written."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from bridge_client import BridgeHTTP, Message, StreamPart
from tests.support.daphne import REPO
from tests.support.ids import fresh_user_id
from tests.support.polling import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def cli_env(server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_API_KEY"}
    env["BRIDGE_URL"] = server.http
    return env


def cli(server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge_client", *args],
        env=cli_env(server),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_listen_prints_what_push_sends_to_the_user_and_a_topic(server):
    user = fresh_user_id("cli")
    topic = f"room:{fresh_user_id('cli')}"
    listen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge_client",
            "listen",
            "--user",
            user,
            "--topic",
            topic,
            "--count",
            "2",
        ],
        env=cli_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listen.stderr is not None
        assert listen.stderr.readline().startswith(f"# listening as {user}")
        pushed = cli(server, "push", "--user", user, "hello from the CLI")
        assert pushed.returncode == 0, pushed.stderr
        reply = json.loads(pushed.stdout)
        assert reply["recipients"][0]["user_id"] == user
        assert cli(server, "push", "--topic", topic, "to the room").returncode == 0
        out, err = listen.communicate(timeout=20)
    finally:
        listen.kill()
    assert listen.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(m["data"]["text"], m["seq"]) for m in lines] == [
        ("hello from the CLI", 1),
        ("to the room", 1),
    ]
    assert lines[0]["id"] == reply["id"] and lines[1]["topic"] == topic


def test_token_prints_a_token_and_errors_are_one_line(server):
    minted = cli(server, "token", fresh_user_id("tok"))
    assert minted.returncode == 0, minted.stderr
    (token,) = minted.stdout.split()
    assert token.count(".") >= 1
    refused = cli(server, "push", "--user", "not valid!", "x")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: 400 invalid")


async def test_the_readme_bot_in_15_lines_answers_a_mention(server, clients):
    readme = (REPO / "clients" / "python" / "README.md").read_text()
    section = readme.split("## A bot in 15 lines", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    code = code.replace("http://127.0.0.1:8000", server.http)
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, env=cli_env(server)
    )
    try:
        user = fresh_user_id("reader")
        alice = clients(server.ws, user_id=user)
        answers: list[Message] = []
        parts: list[StreamPart] = []
        alice.on("message", answers.append)
        alice.on("stream", parts.append)
        await alice.connect()
        await eventually(lambda: _bot_online(server), within=20)
        await alice.send_message("ping @echo_bot")
        await eventually(lambda: _count(answers, 1), within=10)
        assert answers[0].sender == "echo_bot"
        assert answers[0].text == "You said: ping @echo_bot "
        assert len(parts) == 4
    finally:
        bot.terminate()
        await bot.wait()


def _bot_online(server) -> None:
    with BridgeHTTP(server.http) as http:
        assert http.connections("echo_bot")["connections"]


def _count(items: list, n: int) -> None:
    assert len(items) >= n
