"""Writing messages: one transaction assigns each recipient's seqs and stores
the message once with one inbox entry per recipient (SPEC §5)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import connection, transaction

from messaging import metrics
from messaging.models import InboxEntry, Message, UserSequence
from messaging.recipients import Recipient

if TYPE_CHECKING:
    from messaging.delivery import PushRequest


@dataclass
class Planned:
    """A push with its recipients decided; `seqs` is filled in when stored."""

    request: PushRequest
    message_id: uuid.UUID
    recipients: list[Recipient]
    seqs: dict[str, int] = field(default_factory=dict)


# SQLite lets one transaction write at a time, and a thread that finds the
# database locked sleeps and retries on SQLite's busy-handler schedule (up to
# 100 ms a try): with 50 pushes in flight some waited seconds while others got
# in first (S1: p50 38 ms, p99 2.3 s). Queueing a process's writers on a lock
# hands the database over in turn instead. PostgreSQL orders writers by row
# locks on the seq counters and needs none of this.
_sqlite_writer = threading.RLock()


@contextmanager
def write_transaction() -> Iterator[None]:
    """transaction.atomic(); on SQLite, one such transaction at a time per process."""
    if connection.vendor == "sqlite":
        with _sqlite_writer, transaction.atomic():
            yield
    else:
        with transaction.atomic():
            yield


def save_messages(durable: list[Planned], created_at) -> None:
    """Inside the caller's transaction: seqs, the message rows, the inbox rows."""
    wanted = Counter(r.user_id for plan in durable for r in plan.recipients)
    next_seq = reserve_seqs(wanted)
    entries = []
    for plan in durable:
        for recipient in plan.recipients:
            seq = next_seq[recipient.user_id]
            next_seq[recipient.user_id] = seq + 1
            plan.seqs[recipient.user_id] = seq
            entries.append(
                (plan.message_id, recipient.user_id, seq, list(recipient.mentions))
            )
    insert_rows(
        Message,
        ("id", "event", "sender", "data", "created_at"),
        [
            (
                plan.message_id,
                plan.request.event,
                plan.request.sender,
                plan.request.data,
                created_at,
            )
            for plan in durable
        ],
    )
    insert_rows(InboxEntry, ("message", "user_id", "seq", "mentions"), entries)
    metrics.messages_stored_total.inc(len(entries))


def reserve_seqs(wanted: Counter[str]) -> dict[str, int]:
    """Hand out `wanted[user]` consecutive seqs per user; returns the first one.

    One upsert per 500 users, in user order so that concurrent pushes lock the
    counters in the same order and cannot deadlock. It replaces an insert, a
    SELECT ... FOR UPDATE and an UPDATE through the ORM, which together were a
    third of a push's CPU (docs/performance.md). Needs SQLite 3.35+ or
    PostgreSQL (ON CONFLICT ... RETURNING)."""
    table = connection.ops.quote_name(UserSequence._meta.db_table)
    users = sorted(wanted)
    first: dict[str, int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(users), 500):
            chunk = users[start : start + 500]
            rows = ", ".join(["(%s, %s)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} (user_id, last_seq) VALUES {rows} "
                f"ON CONFLICT (user_id) DO UPDATE "
                f"SET last_seq = {table}.last_seq + excluded.last_seq "
                f"RETURNING user_id, last_seq",
                [value for user_id in chunk for value in (user_id, wanted[user_id])],
            )
            for user_id, last_seq in cursor.fetchall():
                first[user_id] = last_seq - wanted[user_id] + 1
    return first


def insert_rows(model, field_names: Sequence[str], rows: Sequence[Sequence]) -> None:
    """INSERT rows as bulk_create would, minus its per-value compiler work.

    Each value is adapted by its model field (JSON, UUID, datetime, foreign
    key), so the rows are what the ORM would write, on SQLite and PostgreSQL;
    for a batch of 100 pushes, bulk_create's SQL compilation cost more than
    the database did (docs/performance.md)."""
    if not rows:
        return
    fields = [model._meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_statement = connection.ops.bulk_batch_size(fields, rows)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            cursor.execute(
                f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "
                f"VALUES {', '.join([row_sql] * len(chunk))}",
                [
                    field.get_db_prep_save(value, connection)
                    for row in chunk
                    for field, value in zip(fields, row, strict=True)
                ],
            )
