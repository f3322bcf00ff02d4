"""Mention parsing: pure text in, candidate handles out (SPEC §1). No database."""

from __future__ import annotations

import re

from accounts.identifiers import USER_ID_RE

# `@` at the start, or after a character that is not a letter, digit, _, ., - or @.
# \w is Unicode-aware, so "é@ci_bot" is not a mention either. The look-behind
# comes after the `@` so that the engine skips to each `@` instead of testing
# the look-behind at every position: 100 times faster on text without mentions.
_MENTION_RE = re.compile(r"@(?<![\w.@-]@)([A-Za-z0-9_.-]+)")


def mention_candidates(text: str) -> list[str]:
    """Handles mentioned in `text`, in order of first appearance, as written.

    Whether a candidate is really a mention (an active public account) is the
    selector's business; this only applies the boundary rules. Linear in the
    text: one regex pass, and a dict (not a list) to drop repeats, since a 64 KB
    text holds thousands of distinct candidates.
    """
    # The longest run after the `@`, then trailing `.` and `-` removed:
    # "@ci_bot." and "@ci_bot-" mention ci_bot; "@ci_bot.io" names ci_bot.io.
    found = dict.fromkeys(run.rstrip(".-") for run in _MENTION_RE.findall(text))
    return [handle for handle in found if USER_ID_RE.match(handle)]
