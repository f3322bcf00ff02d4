"""This process's name in presence, stats and logs."""

from __future__ import annotations

import os
import socket

from messaging.frames import now_text

INSTANCE_NAME = os.environ.get("BRIDGE_INSTANCE_NAME") or (
    f"{socket.gethostname()}:{os.getpid()}"
)
STARTED_AT = now_text()
