"""Retention (SPEC §5): drop stored messages older than BRIDGE_HISTORY_TTL and
beyond BRIDGE_HISTORY_MAX_PER_USER per user, in small batches so that a purge
never holds the write lock long enough to stall pushes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from messaging.models import Message, StreamEntry, StreamSequence
from messaging.streams import idempotency
from messaging.streams.names import personal_stream

BATCH = 1000


@dataclass(frozen=True)
class PurgeResult:
    expired_messages: int
    entries_over_limit: int
    orphaned_messages: int
    idempotency_records: int


def purge(
    *,
    ttl_seconds: int,
    max_per_user: int,
    now: datetime | None = None,
    batch: int = BATCH,
) -> PurgeResult:
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=ttl_seconds)
    expired = _delete_in_batches(
        Message.objects.filter(created_at__lt=cutoff), batch
    )  # their stream entries go with them (CASCADE)
    over_limit = 0
    crowded = StreamSequence.objects.filter(
        stream__startswith=personal_stream(""), last_seq__gt=max_per_user
    ).values_list("stream", "last_seq")
    for stream, last_seq in crowded.iterator():
        # Seqs are dense per stream, so "newest max_per_user" is a seq range.
        over_limit += _delete_in_batches(
            StreamEntry.objects.filter(stream=stream, seq__lte=last_seq - max_per_user),
            batch,
        )
    orphaned = _delete_in_batches(
        Message.objects.filter(
            ~Exists(StreamEntry.objects.filter(message_id=OuterRef("pk")))
        ),
        batch,
    )
    return PurgeResult(
        expired, over_limit, orphaned, idempotency.purge_expired(now=now)
    )


def _delete_in_batches(queryset: QuerySet, batch: int) -> int:
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        with transaction.atomic():
            queryset.model.objects.filter(pk__in=ids).delete()
        total += len(ids)
