"""The JavaScript client in Node (with the `ws` package as its WebSocket)
against a real daphne and Redis: pushes, a topic, an operator disconnect it
recovers from by itself, and an acked topic message (issue 17)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.ids import fresh_user_id

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

JS = Path(__file__).resolve().parents[2] / "clients" / "js"


def test_the_node_client_resumes_after_an_operator_disconnect(server):
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js >= 20 and npm are needed for clients/js"
    if not (JS / "node_modules" / "ws").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True)
    user, topic = fresh_user_id("node"), f"demo:{fresh_user_id('t')}"
    result = subprocess.run(
        [node, "live/against_server.mjs", server.http, server.ws, user, topic],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    saw = json.loads(result.stdout.strip().splitlines()[-1])
    assert saw["seen"] == list(range(1, 11))  # ten pushes, once each, in order
    assert saw["inTopic"] == ["t1", "t2"]
    assert saw["connects"] == 2
    assert saw["ackSeq"] == 3  # the topic's third message
    assert saw["states"][:2] == ["connecting", "connected"]
    assert "connecting" in saw["states"][2:]
