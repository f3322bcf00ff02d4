"""Retention (SPEC §5, §8): drop stored messages past their stream's TTL and
beyond its size limit, in small batches so that a purge never holds the write
lock long enough to stall pushes.

Personal streams keep BRIDGE_HISTORY_TTL and BRIDGE_HISTORY_MAX_PER_USER (the
`ttl_seconds` and `max_per_user` arguments). A topic keeps what its namespace
says (`history_ttl`, `history_size`), longer or shorter than that; a mention
copy of a topic message in a bot's personal stream follows the personal TTL.
Topics of a namespace that no longer exists follow the personal settings. A
message goes once no stream keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from messaging.models import Message, StreamEntry, StreamSequence, TopicNamespace
from messaging.streams import idempotency
from messaging.streams.names import personal_stream

BATCH = 1000


@dataclass(frozen=True)
class PurgeResult:
    expired_messages: int
    entries_over_limit: int
    orphaned_messages: int
    idempotency_records: int
    # Topic entries past their namespace's history_ttl, and mention copies of
    # topic messages past the personal TTL (their messages go as orphans).
    topic_entries_expired: int = 0
    topic_entries_over_limit: int = 0


@dataclass(frozen=True)
class _TopicPolicy:
    streams: Q
    ttl_seconds: int
    size: int


def purge(
    *,
    ttl_seconds: int,
    max_per_user: int,
    now: datetime | None = None,
    batch: int = BATCH,
) -> PurgeResult:
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=ttl_seconds)
    personal = Q(stream__startswith=personal_stream(""))
    # A push to users is in personal streams only: past the personal TTL the
    # whole message goes, with its entries (CASCADE).
    expired = _delete_in_batches(
        Message.objects.filter(created_at__lt=cutoff, topic__isnull=True), batch
    )
    # A topic message stays while its topic keeps it; its mention copies go at
    # the personal TTL.
    topic_expired = _delete_in_batches(
        StreamEntry.objects.filter(
            personal, message__topic__isnull=False, message__created_at__lt=cutoff
        ),
        batch,
    )
    over_limit = _trim(personal, max_per_user, batch)
    topic_over_limit = 0
    for policy in _topic_policies(ttl_seconds, max_per_user):
        topic_cutoff = now - timedelta(seconds=policy.ttl_seconds)
        topic_expired += _delete_in_batches(
            StreamEntry.objects.filter(
                policy.streams, message__created_at__lt=topic_cutoff
            ),
            batch,
        )
        topic_over_limit += _trim(policy.streams, policy.size, batch)
    orphaned = _delete_in_batches(
        Message.objects.filter(
            ~Exists(StreamEntry.objects.filter(message_id=OuterRef("pk")))
        ),
        batch,
    )
    return PurgeResult(
        expired,
        over_limit,
        orphaned,
        idempotency.purge_expired(now=now),
        topic_expired,
        topic_over_limit,
    )


def _topic_policies(ttl_seconds: int, max_per_user: int) -> list[_TopicPolicy]:
    """One policy per namespace, and the personal settings for topics of a
    namespace that no longer exists."""
    policies = []
    known = Q(stream__startswith=personal_stream(""))
    for name, ttl, size in TopicNamespace.objects.values_list(
        "name", "history_ttl", "history_size"
    ):
        streams = Q(stream__startswith=f"{name}:")
        policies.append(_TopicPolicy(streams, ttl, size))
        known |= streams
    policies.append(_TopicPolicy(~known, ttl_seconds, max_per_user))
    return policies


def _trim(streams: Q, keep: int, batch: int) -> int:
    """Delete all but the newest `keep` entries of each of these streams."""
    deleted = 0
    crowded = StreamSequence.objects.filter(streams, last_seq__gt=keep).values_list(
        "stream", "last_seq"
    )
    for stream, last_seq in crowded.iterator():
        # Seqs are dense per stream, so "newest `keep`" is a seq range.
        deleted += _delete_in_batches(
            StreamEntry.objects.filter(stream=stream, seq__lte=last_seq - keep), batch
        )
    return deleted


def _delete_in_batches(queryset: QuerySet, batch: int) -> int:
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        with transaction.atomic():
            queryset.model.objects.filter(pk__in=ids).delete()
        total += len(ids)
