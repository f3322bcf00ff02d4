"""Log formatters: one line per event, as key=value text or as JSON.

Bridge's own events (`bridge.events` logger) carry their fields in
`record.bridge`; both formatters print them after the message.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


def _fields(record: logging.LogRecord) -> dict:
    return getattr(record, "bridge", None) or {}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        return f"{line} {fields}" if fields else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
