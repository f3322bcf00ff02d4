"""Facts about the daphne processes of end-to-end tests (SPEC §6 presence)."""

from __future__ import annotations

import socket

from tests.support.daphne import DaphneProcess

# Short enough that presence, pings and timeouts show within seconds; the
# timeout is long enough that tests' silent clients are not closed under them.
FAST_HEARTBEAT = {"BRIDGE_HEARTBEAT_INTERVAL": "1", "BRIDGE_HEARTBEAT_TIMEOUT": "30"}
INTERVAL = 1.0


def instance_name(process: DaphneProcess) -> str:
    """The name the process registers under (messaging.instance: host:pid)."""
    assert process.process is not None, "the process is not running"
    return f"{socket.gethostname()}:{process.process.pid}"
