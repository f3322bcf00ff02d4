"""Syntax of user ids (public-account handles too) and event names (SPEC §1, §3)."""

from __future__ import annotations

import re

USER_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
USER_ID_RE = re.compile(rf"^{USER_ID_PATTERN}\Z")
EVENT_RE = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}\Z")


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and USER_ID_RE.match(value) is not None


def is_event_name(value: object) -> bool:
    return isinstance(value, str) and EVENT_RE.match(value) is not None
