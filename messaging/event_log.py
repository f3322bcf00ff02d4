"""One structured log line per connect, disconnect, push and refused frame.

Never a message body, a token or a key: only ids, counts, codes and timings."""

from __future__ import annotations

import logging

logger = logging.getLogger("bridge.events")


def log_event(event: str, **fields: object) -> None:
    logger.info(event, extra={"bridge": {"event": event, **fields}})
