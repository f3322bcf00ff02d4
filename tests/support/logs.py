"""Reading daphne's log: crashes must never be swallowed silently."""

from __future__ import annotations

import re

# bridge_project.settings' LOGGING format: "%(asctime)s %(levelname)s %(name)s ...".
_RECORD_START = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ (?P<logger>\S+) ", re.MULTILINE
)
CRASH_MARKERS = ("Exception inside application", "Traceback")


def log_records(text: str) -> list[tuple[str | None, str]]:
    """Split a log into (logger name, record text); text before any record is None's."""
    starts = list(_RECORD_START.finditer(text))
    bounds = [match.start() for match in starts] + [len(text)]
    records: list[tuple[str | None, str]] = []
    if text[: bounds[0]].strip():
        records.append((None, text[: bounds[0]]))
    for index, match in enumerate(starts):
        records.append((match["logger"], text[bounds[index] : bounds[index + 1]]))
    return records


def crashes(text: str, *, allowed_loggers: tuple[str, ...] = ()) -> list[str]:
    """Records holding a crash marker, except those logged by `allowed_loggers`."""
    return [
        record
        for logger, record in log_records(text)
        if any(marker in record for marker in CRASH_MARKERS)
        and logger not in allowed_loggers
    ]


def assert_no_crash(text: str, *, allowed_loggers: tuple[str, ...] = ()) -> None:
    found = crashes(text, allowed_loggers=allowed_loggers)
    assert not found, "daphne logged a crash:\n" + "\n".join(found)[-4000:]
