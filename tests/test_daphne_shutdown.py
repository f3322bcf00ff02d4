"""What bridge_project/daphne_shutdown.py relies on in daphne 4.2 and Twisted 26.

Each test names one upstream behaviour the graceful shutdown builds on; if an
upgrade changes it, this fails before the e2e test's symptoms (clients seeing
1006, lost replies) would. The behaviour itself is tested with real processes
in tests/e2e/test_graceful_shutdown.py.

daphne.server is read, not imported (nor is bridge_project.daphne_shutdown,
which imports it): importing it installs Twisted's reactor in the test process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.web import http

REPO = Path(__file__).resolve().parents[1]


def source(module: str) -> str:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).read_text()


def test_daphne_cancels_applications_from_a_before_shutdown_trigger():
    # The method GracefulServer overrides is the one Twisted calls on SIGTERM.
    server = source("daphne.server")
    assert (
        'reactor.addSystemEventTrigger("before", "shutdown", '
        "self.kill_all_applications)" in server
    )
    assert "reactor.run(installSignalHandlers=self.signal_handlers)" in server


def test_daphne_reports_each_listening_port_to_listen_success():
    assert "listener.addCallback(self.listen_success)" in source("daphne.server")


def test_daphne_cli_builds_its_server_from_server_class():
    assert "self.server = self.server_class(" in source("daphne.cli")


def test_daphne_tracks_each_request_and_its_application_in_connections():
    server = source("daphne.server")
    assert 'self.connections[protocol] = {"connected": time.time()}' in server
    assert 'self.connections[protocol]["application_instance"] = ' in server
    assert 'self.connections[protocol]["disconnected"] = time.time()' in server
    assert "self.server.protocol_connected(self)" in source("daphne.http_protocol")


def test_twisted_http_channels_are_wrapped_and_expose_their_requests():
    from daphne.http_protocol import HTTPFactory, WebRequest

    factory = HTTPFactory(server=None)
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    channel = protocol._channel
    assert isinstance(channel, http.HTTPChannel)
    assert channel.requests == []
    assert channel.persistent
    assert issubclass(WebRequest, http.Request)
    assert http.Request.startedWriting == 0


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_watchdog_ends_a_process_that_will_not_exit():
    done = run_python(
        "import time\n"
        "from bridge_project.daphne_shutdown import start_watchdog\n"
        "start_watchdog(0.2)\n"
        "time.sleep(60)\n"
    )
    assert done.returncode == 1
    assert "exiting now" in done.stderr


def test_the_drain_ends_before_the_watchdog_which_ends_within_the_grace():
    done = run_python(
        "import json\n"
        "from bridge_project.daphne_shutdown import reserve_seconds, watchdog_seconds\n"
        "print(json.dumps([(g, g - reserve_seconds(g), watchdog_seconds(g))\n"
        "                  for g in (1.0, 3.0, 10.0, 60.0)]))\n"
    )
    assert done.returncode == 0, done.stderr
    for grace, drain_ends, watchdog in json.loads(done.stdout):
        assert 0 < drain_ends < watchdog < grace
