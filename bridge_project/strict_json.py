"""json.loads for untrusted input: RFC 8259 only, and no RecursionError escapes."""

from __future__ import annotations

import json
from typing import Any


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str) -> Any:
    """Parse `text`; every malformed input raises ValueError.

    Python's json accepts NaN and Infinity, which no other JSON parser does,
    raises RecursionError on input such as '[' * 100000, and returns strings
    holding lone surrogates."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    # "\ud800" parses into a lone surrogate, a str that cannot be encoded as
    # UTF-8 later; a valid pair parses into one character. Only escaped input
    # can hold one, so the walk is skipped for almost every body.
    if "\\ud" in text or "\\uD" in text:
        _reject_surrogates(value)
    return value


def _reject_surrogates(value: Any) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("lone surrogate in a string") from None
