"""Stream names (SPEC §1, §8): a user's personal stream and topics.

Every stream is `<namespace>:<name>`. The namespace `user` is reserved for
personal streams (`user:alice`); a topic is any other `<namespace>:<name>`.
Names are validated here, once (a token's grants, in accounts, use the same
patterns from accounts.identifiers).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# The patterns are accounts' (token grants are checked there, and accounts
# never imports messaging); re-exported here for the core.
from accounts.identifiers import (
    NAMESPACE_RE,
    PERSONAL_NAMESPACE,
    TOPIC_NAME_RE,
    TOPIC_WILDCARD,
)

# `ns:*` in a token's `topics` grants every topic of the namespace (SPEC §8).
WILDCARD = TOPIC_WILDCARD
_PERSONAL_PREFIX = f"{PERSONAL_NAMESPACE}:"


class InvalidTopic(ValueError):
    """Not a `<namespace>:<name>` topic name; the message says why."""


@dataclass(frozen=True)
class Topic:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"


def parse_topic(value: object) -> Topic:
    """The topic a client or upstream named; raises InvalidTopic."""
    if not isinstance(value, str):
        raise InvalidTopic("'topic' must be a string '<namespace>:<name>'")
    namespace, colon, name = value.partition(":")
    if not colon or not NAMESPACE_RE.match(namespace):
        raise InvalidTopic(
            "'topic' must be '<namespace>:<name>' with a namespace matching "
            "^[a-z][a-z0-9_-]{0,31}$"
        )
    if namespace == PERSONAL_NAMESPACE:
        raise InvalidTopic("the namespace 'user' is reserved for personal streams")
    if not TOPIC_NAME_RE.match(name):
        raise InvalidTopic(
            "the name after ':' must match ^[A-Za-z0-9_.@=-][A-Za-z0-9_.:@=-]{0,127}$"
        )
    return Topic(namespace, name)


def personal_stream(user_id: str) -> str:
    """The stream of a user's own messages (SPEC §5)."""
    return _PERSONAL_PREFIX + user_id


def is_personal(stream: str) -> bool:
    return stream.startswith(_PERSONAL_PREFIX)


def stream_owner(stream: str) -> str | None:
    """The user whose personal stream this is; None for a topic."""
    return stream[len(_PERSONAL_PREFIX) :] if is_personal(stream) else None


def stream_group(stream: str) -> str:
    """The channel-layer group a stream's live messages are published to.

    A personal stream keeps the group its user's connections always join. A
    topic name may hold ':', '@' and '=' and run to 161 characters, none of
    which a Channels group name allows (`group_name_regex`, under 100
    characters), so a topic's group is named by a digest of its name."""
    owner = stream_owner(stream)
    if owner is not None:
        return f"user.{owner}"
    digest = hashlib.blake2b(stream.encode(), digest_size=16).hexdigest()
    return f"topic.{digest}"
