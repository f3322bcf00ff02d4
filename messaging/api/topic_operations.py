"""What the topic operations API reads from the database (SPEC §8 "HTTP"):
which topics are in use, and the per-topic numbers the store knows. Live
numbers (subscribers, presence) come from messaging.topic_presence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Count

from messaging.models import StreamEntry, TopicMember
from messaging.streams import history
from messaging.streams.names import personal_stream
from messaging.streams.namespaces import NamespaceRules, namespace_rules


def stored_topics(*, namespace: str | None = None) -> set[str]:
    """Topics with members or kept messages (those with subscribers only are
    in Redis), of one namespace when given."""
    members = TopicMember.objects.all()
    entries = StreamEntry.objects.exclude(stream__startswith=personal_stream(""))
    if namespace is not None:
        members = members.filter(topic__startswith=f"{namespace}:")
        entries = entries.filter(stream__startswith=f"{namespace}:")
    return set(members.values_list("topic", flat=True).distinct()) | set(
        entries.values_list("stream", flat=True).distinct()
    )


def member_counts(topics: Sequence[str]) -> dict[str, int]:
    found = (
        TopicMember.objects.filter(topic__in=topics)
        .values_list("topic")
        .annotate(n=Count("id"))
    )
    return dict(found)


def topic_seq(topic: str, rules: NamespaceRules | None, seqs: dict[str, int]) -> Any:
    """The topic's last seq (0 when none), None when its namespace is live-only
    (as the `subscribed` frame says, SPEC §8)."""
    if rules is not None and rules.live_only:
        return None
    return seqs.get(topic, 0)


def topic_summaries(
    topics: Sequence[str], *, subscribers: dict[str, int]
) -> list[dict[str, Any]]:
    """One `{"topic", "seq", "subscribers", "members"}` per topic, in order."""
    seqs = history.latest_seqs(topics)
    members = member_counts(topics)
    return [
        {
            "topic": topic,
            "seq": topic_seq(topic, namespace_rules(topic.partition(":")[0]), seqs),
            "subscribers": subscribers.get(topic, 0),
            "members": members.get(topic, 0),
        }
        for topic in topics
    ]
