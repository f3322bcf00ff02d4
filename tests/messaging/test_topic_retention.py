"""Retention per namespace (SPEC §8): purge_messages applies each namespace's
history_ttl and history_size to its topics; personal streams, mention copies
of topic messages included, keep BRIDGE_HISTORY_TTL and
BRIDGE_HISTORY_MAX_PER_USER."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from messaging.models import Message, StreamEntry, TopicNamespace
from messaging.streams import delivery, retention
from messaging.streams.delivery import PushRequest
from messaging.streams.names import personal_stream
from tests.support.topics import make_namespace

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

HOUR = 3600
DAY = 24 * HOUR
WEEK = 7 * DAY


def to_topic(topic: str, *, count: int = 1, text: str | None = None) -> list[str]:
    receipts = delivery.push_batch(
        [
            PushRequest(
                targets=(),
                event="message",
                data={"text": text} if text else n,
                sender=None,
                text=text,
                topic=topic,
            )
            for n in range(count)
        ]
    )
    return [receipt.message_id for receipt in receipts]


def to_user(user_id: str, *, count: int = 1) -> list[str]:
    receipts = delivery.push_batch(
        [
            PushRequest(targets=(user_id,), event="message", data=n, sender=None)
            for n in range(count)
        ]
    )
    return [receipt.message_id for receipt in receipts]


def seqs(stream: str) -> list[int]:
    return list(
        StreamEntry.objects.filter(stream=stream)
        .order_by("seq")
        .values_list("seq", flat=True)
    )


def age(message_ids: list[str], *, seconds: float) -> None:
    Message.objects.filter(id__in=message_ids).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )


def purge(**kwargs) -> retention.PurgeResult:
    return retention.purge(**{"ttl_seconds": WEEK, "max_per_user": 1000, **kwargs})


# --- history_ttl --------------------------------------------------------------------


def test_a_topic_keeps_messages_longer_than_the_personal_ttl_when_told_to():
    make_namespace("archive", history_ttl=30 * DAY)
    kept = to_topic("archive:log", count=2)
    personal = to_user("alice", count=2)
    age(kept + personal, seconds=10 * DAY)

    result = purge()

    assert seqs("archive:log") == [1, 2]
    assert Message.objects.filter(id__in=kept).count() == 2
    assert seqs(personal_stream("alice")) == []
    assert (result.expired_messages, result.topic_entries_expired) == (2, 0)


def test_a_topic_drops_messages_sooner_than_the_personal_ttl_when_told_to():
    make_namespace("ticker", history_ttl=HOUR)
    old = to_topic("ticker:btc", count=2)
    to_topic("ticker:btc")
    personal = to_user("alice")
    age(old + personal, seconds=2 * HOUR)

    result = purge()

    assert seqs("ticker:btc") == [3]
    assert not Message.objects.filter(id__in=old).exists()
    assert seqs(personal_stream("alice")) == [1]
    assert (result.topic_entries_expired, result.orphaned_messages) == (2, 2)


def test_each_namespace_has_its_own_ttl():
    make_namespace("short", history_ttl=HOUR)
    make_namespace("long", history_ttl=30 * DAY)
    old = to_topic("short:a") + to_topic("long:a")
    age(old, seconds=DAY)
    purge()
    assert (seqs("short:a"), seqs("long:a")) == ([], [1])


def test_a_mention_copy_follows_the_personal_ttl(default_public_accounts):
    make_namespace("archive", history_ttl=30 * DAY)
    (message_id,) = to_topic("archive:log", text="@ci_bot look")
    assert seqs(personal_stream("ci_bot")) == [1]
    age([message_id], seconds=10 * DAY)

    purge()

    assert seqs(personal_stream("ci_bot")) == []
    assert seqs("archive:log") == [1]
    assert Message.objects.filter(id=message_id).exists()


def test_a_mention_copy_outlives_a_topic_with_a_shorter_ttl(default_public_accounts):
    make_namespace("ticker", history_ttl=HOUR)
    (message_id,) = to_topic("ticker:btc", text="@ci_bot look")
    age([message_id], seconds=2 * HOUR)

    purge()

    assert seqs("ticker:btc") == []
    assert seqs(personal_stream("ci_bot")) == [1]
    assert Message.objects.filter(id=message_id).exists()


# --- history_size -------------------------------------------------------------------


def test_a_topic_keeps_its_namespaces_history_size():
    make_namespace("room", history_size=3)
    make_namespace("big", history_size=1000)
    to_topic("room:a", count=5)
    to_topic("room:b", count=2)
    to_topic("big:a", count=5)

    result = purge(max_per_user=1)

    assert seqs("room:a") == [3, 4, 5]
    assert seqs("room:b") == [1, 2]
    assert seqs("big:a") == [1, 2, 3, 4, 5]
    assert result.topic_entries_over_limit == 2
    assert result.entries_over_limit == 0
    assert Message.objects.count() == 10
    assert purge(max_per_user=1) == retention.PurgeResult(0, 0, 0, 0)


def test_max_per_user_still_applies_to_personal_streams_only():
    make_namespace("room", history_size=1000)
    to_topic("room:a", count=4)
    to_user("alice", count=4)
    result = purge(max_per_user=2)
    assert seqs(personal_stream("alice")) == [3, 4]
    assert seqs("room:a") == [1, 2, 3, 4]
    assert (result.entries_over_limit, result.topic_entries_over_limit) == (2, 0)


def test_a_namespace_made_live_only_drops_what_its_topics_kept():
    make_namespace("room")
    to_topic("room:a", count=3)
    TopicNamespace.objects.filter(name="room").update(history_size=0)
    result = purge()
    assert seqs("room:a") == []
    assert (result.topic_entries_over_limit, result.orphaned_messages) == (3, 3)


def test_topics_of_a_deleted_namespace_follow_the_personal_settings():
    make_namespace("gone", history_size=1000, history_ttl=30 * DAY)
    old = to_topic("gone:a")
    to_topic("gone:a", count=4)
    TopicNamespace.objects.filter(name="gone").delete()
    age(old, seconds=10 * DAY)

    result = purge(max_per_user=2)

    assert seqs("gone:a") == [4, 5]
    assert (result.topic_entries_expired, result.topic_entries_over_limit) == (1, 2)


def test_a_namespace_prefix_does_not_reach_another_namespace():
    make_namespace("room", history_size=1)
    make_namespace("room-b", history_size=1000)
    to_topic("room:a", count=3)
    to_topic("room-b:a", count=3)
    purge()
    assert (seqs("room:a"), seqs("room-b:a")) == ([3], [1, 2, 3])


# --- the management command ---------------------------------------------------------


def test_purge_messages_reports_and_applies_topic_retention():
    make_namespace("room", history_size=2, history_ttl=HOUR)
    old = to_topic("room:a")
    to_topic("room:a", count=3)
    age(old, seconds=2 * HOUR)
    out = StringIO()
    call_command("purge_messages", stdout=out)
    found = dict(re.findall(r"^(.+): (\d+)$", out.getvalue(), re.MULTILINE))
    assert found["topic entries expired"] == "1"
    assert found["topic entries over their namespace's history_size"] == "1"
    assert seqs("room:a") == [3, 4]
