"""Topics: membership, and who may subscribe or publish (SPEC §8).

Pure decisions over data: the doors ask here and turn a TopicRefused into
their own error shape (an `error` frame, or an HTTP error). Sync functions,
called from request threads or through ws_database.run_db.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction

from bridge_project.view_db import on_view_db_thread
from messaging.models import TopicMember, TopicNamespace
from messaging.streams import publish
from messaging.streams.names import WILDCARD, InvalidTopic, Topic, parse_topic
from messaging.streams.namespaces import (
    NOT_CACHED,
    NamespaceRules,
    cached_namespace_rules,
    namespace_rules,
)

logger = logging.getLogger(__name__)

Subscribe = TopicNamespace.Subscribe
# `unsubscribed` reason when a membership or grant no longer admits (SPEC §8).
REMOVED = "removed"
ClientPublish = TopicNamespace.ClientPublish


class TopicRefused(Exception):
    """`code` is SPEC §8's: `invalid_frame`/`invalid`, `not_found`, `forbidden`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def topic_rules(topic: str) -> tuple[Topic, NamespaceRules]:
    """The parsed topic and its namespace's rules; raises TopicRefused."""
    parsed = _parsed(topic)
    return parsed, _existing(parsed, namespace_rules(parsed.namespace))


async def atopic_rules(topic: str) -> tuple[Topic, NamespaceRules]:
    """topic_rules for the async views: from the cache when it holds the
    namespace, else read on their database thread."""
    parsed = _parsed(topic)
    rules = cached_namespace_rules(parsed.namespace)
    if rules is NOT_CACHED:
        rules = await on_view_db_thread(namespace_rules, parsed.namespace)
    return parsed, _existing(parsed, rules)


def _parsed(topic: str) -> Topic:
    try:
        return parse_topic(topic)
    except InvalidTopic as exc:
        raise TopicRefused("invalid", str(exc)) from None


def _existing(parsed: Topic, rules: NamespaceRules | None) -> NamespaceRules:
    if rules is None:
        raise TopicRefused(
            "not_found", f"there is no topic namespace '{parsed.namespace}'"
        )
    return rules


def grants_topic(grants: Iterable[str], topic: Topic) -> bool:
    """Whether a token's `topics` claim names this topic or its `ns:*`."""
    wildcard = f"{topic.namespace}:{WILDCARD}"
    return any(grant == str(topic) or grant == wildcard for grant in grants)


def is_member(topic: str, user_id: str) -> bool:
    return TopicMember.objects.filter(topic=topic, user_id=user_id).exists()


def may_subscribe(
    *, user_id: str, topic: str, grants: Iterable[str] = ()
) -> NamespaceRules:
    """The namespace's rules if this user may subscribe; raises TopicRefused.

    A token grant admits in every policy; `public` admits any authenticated
    connection; `members` asks the membership table."""
    parsed, rules = topic_rules(topic)
    if grants_topic(grants, parsed) or rules.subscribe == Subscribe.PUBLIC:
        return rules
    if rules.subscribe == Subscribe.MEMBERS and is_member(topic, user_id):
        return rules
    raise TopicRefused("forbidden", f"you may not subscribe to '{topic}'")


def may_publish(*, user_id: str, topic: str, subscribed: bool) -> NamespaceRules:
    """The rules if this connection may send `message` frames to the topic
    (`client_publish`); raises TopicRefused."""
    _, rules = topic_rules(topic)
    allowed = rules.client_publish == ClientPublish.SUBSCRIBERS and subscribed
    if rules.client_publish == ClientPublish.MEMBERS:
        allowed = is_member(topic, user_id)
    if not allowed:
        raise TopicRefused("forbidden", f"you may not publish to '{topic}'")
    return rules


# --- membership ------------------------------------------------------------------


def member_add(*, topic: str, user_id: str) -> bool:
    """Make the user a member; False when already one."""
    try:
        with transaction.atomic():
            _, created = TopicMember.objects.get_or_create(topic=topic, user_id=user_id)
    except IntegrityError:  # a concurrent add won
        return False
    return created


def member_remove(*, topic: str, user_id: str) -> bool:
    """End the membership; False when the user was not a member. Either way,
    after commit every connection of the user, on every instance, checks again
    whether it may stay subscribed (SPEC §8: `unsubscribed`, reason
    `removed`), so a retry after a Redis failure still ends them."""
    deleted, _ = TopicMember.objects.filter(topic=topic, user_id=user_id).delete()
    transaction.on_commit(lambda: _end_subscriptions(user_id, topic))
    return deleted > 0


def _end_subscriptions(user_id: str, topic: str) -> None:
    """The membership is gone whatever Redis does, so a failed publish is
    logged, not raised: the removal stands."""
    try:
        publish.end_subscriptions_blocking(user_id=user_id, topic=topic, reason=REMOVED)
    except publish.LayerUnavailable as exc:
        logger.warning(
            "member removed from %s, but its subscriptions were not ended: %s",
            topic,
            exc,
        )


def members_page(
    topic: str, *, offset: int, limit: int
) -> tuple[list[tuple[str, datetime]], int]:
    members = TopicMember.objects.filter(topic=topic)
    page = members.order_by("user_id").values_list("user_id", "added_at")[
        offset : offset + limit
    ]
    return list(page), members.count()


def user_topics(user_id: str) -> list[str]:
    """The topics the user is a member of, by name."""
    return list(
        TopicMember.objects.filter(user_id=user_id)
        .order_by("topic")
        .values_list("topic", flat=True)
    )
