"""Syntax of user ids (public-account handles too), event names and topic
names (SPEC §1, §3, §8).

The topic patterns live here, not in messaging, because a token's topic
grants are checked by accounts, which never imports messaging;
messaging/streams/names.py uses them."""

from __future__ import annotations

import re

USER_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
USER_ID_RE = re.compile(rf"^{USER_ID_PATTERN}\Z")
EVENT_RE = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}\Z")
NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")
# \Z, not $: `$` also matches before a final "\n" ("room:42\n").
TOPIC_NAME_RE = re.compile(r"^[A-Za-z0-9_.@=-][A-Za-z0-9_.:@=-]{0,127}\Z")
# A streamed message's id, chosen by its sender (SPEC §9): part of a Redis key.
STREAM_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
# The namespace of personal streams (`user:<id>`): never a topic's.
PERSONAL_NAMESPACE = "user"
# `ns:*` in a token's `topics` grants every topic of the namespace.
TOPIC_WILDCARD = "*"


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and USER_ID_RE.match(value) is not None


def is_event_name(value: object) -> bool:
    return isinstance(value, str) and EVENT_RE.match(value) is not None


def is_stream_id(value: object) -> bool:
    return isinstance(value, str) and STREAM_ID_RE.match(value) is not None


def is_topic_grant(value: object) -> bool:
    """A token's `topics` item (SPEC §8): a topic `<namespace>:<name>`, or
    `<namespace>:*` for every topic of the namespace."""
    if not isinstance(value, str):
        return False
    namespace, colon, name = value.partition(":")
    return bool(
        colon
        and NAMESPACE_RE.match(namespace)
        and namespace != PERSONAL_NAMESPACE
        and (name == TOPIC_WILDCARD or TOPIC_NAME_RE.match(name))
    )
