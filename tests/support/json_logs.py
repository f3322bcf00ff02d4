"""Reading a daphne log written with BRIDGE_LOG_FORMAT=json."""

from __future__ import annotations

import json
from typing import Any


def json_records(text: str) -> list[dict[str, Any]]:
    """The log's JSON objects, one per line, in order; other lines are skipped
    (`non_json_lines` lists them)."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            assert isinstance(record, dict), line
            records.append(record)
    return records


def non_json_lines(text: str) -> list[str]:
    """Non-empty lines that are not one JSON object each."""
    bad = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not isinstance(parsed, dict):
            bad.append(line)
    return bad


def events(records: list[dict[str, Any]], name: str, **fields: Any) -> list[dict]:
    """Records of Bridge event `name` whose fields include `fields`."""
    return [
        r
        for r in records
        if r.get("event") == name and all(r.get(k) == v for k, v in fields.items())
    ]
