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


def test_the_packed_package_type_checks(tmp_path):
    """`npm pack`, installed into a fresh project, type-checks a typed example
    with TypeScript (installed by `npm ci` from clients/js's lock file)."""
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed for clients/js"
    if not (JS / "node_modules" / "typescript").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=300
        )
    packed = subprocess.run(
        [npm, "pack", "--pack-destination", str(tmp_path)],
        cwd=JS,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    tarball = tmp_path / packed.stdout.strip().splitlines()[-1]
    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text('{"name": "app", "type": "module"}')
    subprocess.run(
        [npm, "install", "--offline", "--no-audit", "--no-fund", str(tarball)],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=120,
    )
    shutil.copy(JS / "examples" / "typed.ts", project / "typed.ts")
    config = (JS / "tsconfig.json").read_text().replace("examples/typed.ts", "typed.ts")
    (project / "tsconfig.json").write_text(config)
    checked = subprocess.run(
        [str(JS / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    installed = project / "node_modules" / "bridge-client"
    assert sorted(p.name for p in (installed / "src").iterdir()) == [
        "bridge.d.ts",
        "bridge.js",
    ]


@pytest.mark.django_db
def test_the_module_is_served_at_a_stable_url(client, settings):
    response = client.get("/static/bridge/bridge.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert b"export class BridgeClient" in body
