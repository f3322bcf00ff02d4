"""Mention parsing: pure text in, candidate handles out (SPEC §1). No database."""

from __future__ import annotations

import re

from accounts.identifiers import USER_ID_RE

# `@` at the start, or after a character that is not a letter, digit, _, ., - or @.
# \w is Unicode-aware, so "é@ci_bot" is not a mention either.
_MENTION_RE = re.compile(r"(?<![\w.@-])@([A-Za-z0-9_.-]+)")


def mention_candidates(text: str) -> list[str]:
    """Handles mentioned in `text`, in order of first appearance, as written.

    Whether a candidate is really a mention (an active public account) is the
    selector's business; this only applies the boundary rules.
    """
    found: list[str] = []
    for match in _MENTION_RE.finditer(text):
        # The longest run after the `@`, then trailing `.` and `-` removed:
        # "@ci_bot." and "@ci_bot-" mention ci_bot; "@ci_bot.io" names ci_bot.io.
        handle = match.group(1).rstrip(".-")
        if USER_ID_RE.match(handle) and handle not in found:
            found.append(handle)
    return found
