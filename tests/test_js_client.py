"""The JavaScript client's unit tests (clients/js/test, Node's built-in test
runner) run with the suite, and the server serves the module at its stable
URL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[1] / "clients" / "js"


def test_the_js_client_unit_tests_pass():
    node = shutil.which("node")
    assert node is not None, (
        "Node.js >= 20 is needed for clients/js (apt-get install nodejs)"
    )
    result = subprocess.run(
        [node, "--test", "test/"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout


@pytest.mark.django_db
def test_the_module_is_served_at_a_stable_url(client, settings):
    response = client.get("/static/bridge/bridge.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert b"export class BridgeClient" in body
