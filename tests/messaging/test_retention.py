"""Retention (SPEC §5): BRIDGE_HISTORY_TTL and BRIDGE_HISTORY_MAX_PER_USER, as
enforced by retention.purge and `manage.py purge_messages`; and the index that
every resume and history read relies on."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from messaging.models import IdempotencyRecord, Message, StreamEntry, StreamSequence
from messaging.streams import delivery, history, retention
from messaging.streams.delivery import PushRequest
from messaging.streams.names import personal_stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

DAY = 24 * 3600
WEEK = 7 * DAY


def push_many(*targets: str, count: int = 1) -> list[str]:
    """`count` stored pushes to `targets`, in one batch; returns their ids."""
    receipts = delivery.push_batch(
        [
            PushRequest(targets=targets, event="message", data=n, sender=None)
            for n in range(count)
        ]
    )
    return [receipt.message_id for receipt in receipts]


def seqs(user_id: str) -> list[int]:
    return list(
        StreamEntry.objects.filter(stream=personal_stream(user_id))
        .order_by("seq")
        .values_list("seq", flat=True)
    )


def age(message_ids: list[str], *, seconds: float) -> None:
    Message.objects.filter(id__in=message_ids).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )


def purge(**kwargs) -> retention.PurgeResult:
    return retention.purge(**{"ttl_seconds": WEEK, "max_per_user": 1000, **kwargs})


# --- TTL ------------------------------------------------------------------------------


def test_messages_older_than_the_ttl_are_deleted_for_every_recipient():
    old = push_many("alice", "bob", count=2)
    push_many("alice", count=3)
    age(old, seconds=WEEK + 60)
    result = purge()
    assert result.expired_messages == 2
    assert seqs("alice") == [3, 4, 5]
    assert seqs("bob") == []
    assert not Message.objects.filter(id__in=old).exists()


def test_ttl_is_measured_from_now():
    push_many("alice", count=3)
    now = timezone.now()
    assert (
        purge(ttl_seconds=3600, now=now + timedelta(minutes=59)).expired_messages == 0
    )
    assert seqs("alice") == [1, 2, 3]
    assert (
        purge(ttl_seconds=3600, now=now + timedelta(minutes=61)).expired_messages == 3
    )
    assert seqs("alice") == []


def test_seqs_keep_counting_after_everything_expired():
    push_many("alice", count=3)
    purge(ttl_seconds=60, now=timezone.now() + timedelta(hours=1))
    assert seqs("alice") == []
    (receipt,) = delivery.push_batch(
        [PushRequest(targets=("alice",), event="message", data=None, sender=None)]
    )
    assert receipt.recipients[0].seq == 4


# --- max per user ---------------------------------------------------------------------


def test_only_the_newest_max_per_user_messages_are_kept_per_user():
    push_many("alice", count=10)
    push_many("bob", count=3)
    result = purge(max_per_user=4)
    assert result.entries_over_limit == 6
    assert seqs("alice") == [7, 8, 9, 10]
    assert seqs("bob") == [1, 2, 3]
    assert [f.seq for f in history.frames_after("user:alice", after_seq=0)] == [
        7,
        8,
        9,
        10,
    ]
    # A second run finds nothing more to do.
    assert purge(max_per_user=4) == retention.PurgeResult(0, 0, 0, 0)


def test_purging_in_small_batches_deletes_the_same():
    push_many("alice", count=25)
    result = purge(max_per_user=3, batch=4)
    assert result.entries_over_limit == 22
    assert seqs("alice") == [23, 24, 25]
    assert Message.objects.count() == 3


def test_a_message_still_kept_for_another_recipient_is_not_deleted():
    shared = push_many("alice", "bob")  # alice#1, bob#1
    push_many("alice", count=2)  # alice#2, alice#3
    result = purge(max_per_user=2)
    assert (result.entries_over_limit, result.orphaned_messages) == (1, 0)
    assert seqs("alice") == [2, 3]
    assert seqs("bob") == [1]
    page, _ = history.messages_page("user:bob", after_seq=0, limit=10)
    assert [m["id"] for m in page] == shared


def test_a_message_left_with_no_recipient_is_deleted():
    shared = push_many("alice", "bob")
    push_many("alice", count=1)
    push_many("bob", count=1)
    result = purge(max_per_user=1)
    assert result.entries_over_limit == 2
    assert result.orphaned_messages == 1
    assert not Message.objects.filter(id__in=shared).exists()
    assert Message.objects.count() == 2


def test_a_stored_message_that_never_had_a_recipient_is_deleted():
    Message.objects.create(event="message", data=None, created_at=timezone.now())
    push_many("alice")
    assert purge().orphaned_messages == 1
    assert Message.objects.count() == 1


# --- idempotency records --------------------------------------------------------------


def record(key: str, created_at: datetime) -> None:
    IdempotencyRecord.objects.create(
        scope="open", key=key, reply={"id": key}, created_at=created_at
    )


def test_idempotency_records_past_24_hours_are_deleted_and_newer_ones_kept():
    now = timezone.now()
    record("old", now - timedelta(hours=24, minutes=1))
    record("recent", now - timedelta(hours=23))
    assert purge().idempotency_records == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]


# --- the management command -----------------------------------------------------------


def run_purge_messages(*args: str) -> str:
    out = StringIO()
    call_command("purge_messages", *args, stdout=out)
    return out.getvalue()


def counts(output: str) -> dict[str, int]:
    found = dict(re.findall(r"^(.+): (\d+)$", output, re.MULTILINE))
    return {label: int(value) for label, value in found.items()}


def test_purge_messages_prints_the_counts():
    expired = push_many("alice", count=2)
    age(expired, seconds=2 * DAY)
    push_many("alice", count=5)  # alice#3..7: 3 over a limit of 2
    Message.objects.create(event="message", data=None, created_at=timezone.now())
    record("old", timezone.now() - timedelta(hours=25))
    output = run_purge_messages("--ttl", str(DAY), "--max-per-user", "2")
    assert counts(output) == {
        "expired messages": 2,
        "personal stream entries over 2 per user": 3,
        "messages left in no stream": 4,
        "idempotency records past 24 h": 1,
        "topic entries expired": 0,
        "topic entries over their namespace's history_size": 0,
    }
    assert seqs("alice") == [6, 7]


@override_settings(BRIDGE_HISTORY_TTL=3600, BRIDGE_HISTORY_MAX_PER_USER=3)
def test_purge_messages_enforces_the_settings_by_default():
    expired = push_many("alice", count=1)
    age(expired, seconds=3601)
    push_many("alice", count=5)
    output = run_purge_messages()
    assert counts(output)["expired messages"] == 1
    assert counts(output)["personal stream entries over 3 per user"] == 2
    assert seqs("alice") == [4, 5, 6]


# --- the (stream, seq) index ----------------------------------------------------------


def test_reading_a_users_messages_after_a_seq_uses_the_user_seq_index():
    users = [f"user{n:02}" for n in range(50)]
    messages = [
        Message(event="message", data=None, created_at=timezone.now())
        for _ in range(5000)
    ]
    Message.objects.bulk_create(messages, batch_size=1000)
    StreamEntry.objects.bulk_create(
        [
            StreamEntry(
                message=message, stream=personal_stream(users[n % 50]), seq=n // 50 + 1
            )
            for n, message in enumerate(messages)
        ],
        batch_size=1000,
    )
    StreamSequence.objects.bulk_create(
        [StreamSequence(stream=personal_stream(user), last_seq=100) for user in users]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    query = StreamEntry.objects.filter(
        stream=personal_stream("user07"), seq__gt=90
    ).order_by("seq")
    assert [e.seq for e in query] == list(range(91, 101))

    if connection.vendor == "postgresql":
        plan = query.explain()
        assert "Seq Scan" not in plan, plan
        # An index scan, index-only scan or bitmap index scan, on that index.
        assert re.search(r"Index (Only )?Scan (using|on) stream_seq", plan), plan
        page_plan = query.select_related("message").explain()
        assert "Seq Scan on messaging_streamentry" not in page_plan, page_plan
    else:
        # SQLite implements the unique constraint as an automatic index; find
        # its name and check that it is the (stream, seq) one the plan uses.
        plan = query.explain()
        found = re.search(r"SEARCH messaging_streamentry USING INDEX (\S+)", plan)
        assert found, plan
        assert "(stream=? AND seq>?)" in plan, plan
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA index_info('{found[1]}')")
            columns = [row[2] for row in cursor.fetchall()]
            cursor.execute("PRAGMA index_list('messaging_streamentry')")
            unique = {row[1]: bool(row[2]) for row in cursor.fetchall()}
        assert columns == ["stream", "seq"]
        assert unique[found[1]] is True
