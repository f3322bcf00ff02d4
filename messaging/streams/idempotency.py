"""Idempotent pushes (SPEC §5): a repeated key returns the first reply, sends nothing.

The record is written in the transaction that stores the message, under a
unique (scope, key) constraint, so two concurrent pushes with one key cannot
both commit: the loser gets IntegrityError, and delivery then replays the
winner's reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from messaging.models import IdempotencyRecord

WINDOW = timedelta(hours=24)


def recorded_replies(scope: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    keys = list(keys)
    if not keys:
        return {}
    records = IdempotencyRecord.objects.filter(
        scope=scope, key__in=keys, created_at__gte=timezone.now() - WINDOW
    ).values_list("key", "reply")
    return dict(records)


def record(scope: str, replies: Mapping[str, dict[str, Any]]) -> None:
    """Inside the storing transaction; raises IntegrityError on a concurrent twin."""
    if not replies:
        return
    now = timezone.now()
    IdempotencyRecord.objects.filter(
        scope=scope, key__in=list(replies), created_at__lt=now - WINDOW
    ).delete()
    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(scope=scope, key=key, reply=reply, created_at=now)
        for key, reply in replies.items()
    )


def forget(scope: str, keys: Iterable[str]) -> None:
    keys = list(keys)
    if keys:
        IdempotencyRecord.objects.filter(scope=scope, key__in=keys).delete()


def purge_expired(*, now: datetime | None = None) -> int:
    deleted, _ = IdempotencyRecord.objects.filter(
        created_at__lt=(now or timezone.now()) - WINDOW
    ).delete()
    return deleted
