"""json.loads for untrusted input: RFC 8259 only, and bounded depth.

Python's json accepts NaN, Infinity and 1e400 (which becomes inf), none of which
other JSON parsers or the database accept; parses nesting deep enough that
re-encoding it later raises RecursionError; and returns strings holding lone
surrogates ("\\ud800"), which cannot be encoded as UTF-8; and returns strings
holding NUL ("\\u0000"), which PostgreSQL's text and jsonb cannot store (the
insert fails, so the push would answer 503 "retry later" for ever, after
making the group commit redo the transaction it shares). Each is a ValueError
here, so callers answer 400 / invalid_json instead of failing later.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 100


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range")
    return number


def loads(text: str) -> Any:
    """Parse `text`; every malformed or hostile input raises ValueError."""
    try:
        value = json.loads(
            text, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except RecursionError:
        raise ValueError("nested too deeply") from None
    # Both walks are skipped for almost every body: deep nesting needs at least
    # MAX_DEPTH brackets, and a lone surrogate or a NUL needs a \u escape (json
    # refuses a raw NUL in a string).
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(value)
    surrogates = "\\ud" in text or "\\uD" in text
    nul = "\\u0000" in text
    if surrogates or nul:
        _check_strings(value, surrogates=surrogates, nul=nul)
    return value


def _check_depth(value: Any) -> None:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def _check_strings(value: Any, *, surrogates: bool, nul: bool) -> None:
    """Every string and object key: no lone surrogate, no NUL."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if nul and "\x00" in item:
                raise ValueError("NUL (\\u0000) in a string")
            if surrogates:
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("lone surrogate in a string") from None
