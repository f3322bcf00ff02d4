"""Writing messages: one transaction assigns each stream's seqs and stores the
message once with one entry per stream it is in (SPEC §5, §8): a topic
message is one row in its topic, whatever the number of subscribers, plus one
in the personal stream of each bot it mentions.

Concurrent pushes of one process share that transaction (group commit): while
one request thread commits, the others queue their writes, and the next of them
to get the database commits every queued write at once, with one seq upsert
and one INSERT per table for all of them. Each caller returns only once its
own write is committed, so store-then-send holds for every push.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.utils import timezone

from messaging import metrics
from messaging.models import Message, StreamEntry, StreamSequence
from messaging.streams.names import personal_stream
from messaging.streams.recipients import Recipient

if TYPE_CHECKING:
    from messaging.streams.delivery import PushRequest


@dataclass
class Planned:
    """A push with its recipients decided; `seqs` (stream -> seq) is filled in
    when stored."""

    request: PushRequest
    message_id: uuid.UUID
    # Users whose personal stream gets a copy: targets and mentioned bots.
    recipients: list[Recipient]
    seqs: dict[str, int] = field(default_factory=dict)
    # The connection (channel) that published a topic message: no copy for it.
    exclude: str = ""

    def copies(self) -> list[tuple[str, tuple[str, ...]]]:
        """(stream, mentions) of every stream the message goes into: its topic
        first, then each recipient's personal stream."""
        copies = [(personal_stream(r.user_id), r.mentions) for r in self.recipients]
        if self.request.topic is not None:
            copies.insert(0, (self.request.topic, ()))
        return copies


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


@dataclass(eq=False)
class _Write:
    durable: list[Planned]
    after_save: Callable[[], None] | None
    created_at: datetime | None = None
    error: BaseException | None = None
    done: bool = False


class GroupCommit:
    """Commit the writes of concurrent callers (threads) in one transaction.

    With fifty pushes in flight, a transaction each spent more CPU on
    BEGIN/COMMIT and on one upsert and two INSERTs per push than on the data
    (docs/performance.md). Callers queue here; whoever gets the committer lock
    commits everything queued so far. A write that fails the shared
    transaction (a concurrent idempotency twin, say) must not fail the others,
    so after a failure every write of that group is retried on its own."""

    def __init__(self) -> None:
        self._queued: list[_Write] = []
        self._queue_lock = threading.Lock()
        self._committer = threading.Lock()

    def store(
        self, durable: list[Planned], after_save: Callable[[], None] | None = None
    ) -> datetime:
        """Save `durable` (seqs filled in) and run `after_save` in the same
        committed transaction; returns the time stored."""
        if not durable and after_save is None:
            return timezone.now()  # nothing to write
        write = _Write(durable, after_save)
        if connection.in_atomic_block:
            # The caller's own transaction would hold everyone's commit.
            _commit_group([write])
        else:
            with self._queue_lock:
                self._queued.append(write)
            with self._committer:
                if not write.done:
                    with self._queue_lock:
                        group, self._queued = self._queued, []
                    _commit_group(group)
        if write.error is not None:
            raise write.error
        if write.created_at is None:
            raise RuntimeError("the committing thread was interrupted")
        return write.created_at


def _commit_group(group: list[_Write]) -> None:
    try:
        created_at = _commit_together(group)
    except Exception as exc:
        if len(group) == 1:
            group[0].error = exc
        else:
            # One write may have failed them all: each on its own.
            for write in group:
                _commit_alone(write)
    else:
        for write in group:
            write.created_at = created_at
    finally:
        for write in group:
            write.done = True


def _commit_alone(write: _Write) -> None:
    try:
        write.created_at = _commit_together([write])
    except Exception as exc:
        write.error = exc


def _commit_together(group: list[_Write]) -> datetime:
    with write_transaction():
        created_at = timezone.now()
        durable = [plan for write in group for plan in write.durable]
        if durable:
            save_messages(durable, created_at)
        for write in group:
            if write.after_save is not None:
                write.after_save()
    return created_at


group_commit = GroupCommit()


def save_messages(durable: list[Planned], created_at) -> None:
    """Inside the caller's transaction: seqs, the message rows, the stream rows."""
    copies = [(plan, plan.copies()) for plan in durable]
    wanted = Counter(stream for _, streams in copies for stream, _ in streams)
    next_seq = reserve_seqs(wanted)
    entries = []
    for plan, streams in copies:
        for stream, mentions in streams:
            seq = next_seq[stream]
            next_seq[stream] = seq + 1
            plan.seqs[stream] = seq
            entries.append((plan.message_id, stream, seq, list(mentions)))
    insert_rows(
        Message,
        (
            "id",
            "event",
            "sender",
            "data",
            "topic",
            "created_at",
            "pushed_by_key",
            "stream_id",
            "incomplete",
        ),
        [
            (
                plan.message_id,
                plan.request.event,
                plan.request.sender,
                plan.request.data,
                plan.request.topic,
                created_at,
                plan.request.pushed_by_key,
                plan.request.stream_id,
                plan.request.incomplete,
            )
            for plan in durable
        ],
    )
    insert_rows(StreamEntry, ("message", "stream", "seq", "mentions"), entries)
    metrics.messages_stored_total.inc(len(entries))


def reserve_seqs(wanted: Counter[str]) -> dict[str, int]:
    """Hand out `wanted[stream]` consecutive seqs per stream; returns the first.

    One upsert per 500 streams, in name order so that concurrent pushes lock the
    counters in the same order and cannot deadlock. It replaces an insert, a
    SELECT ... FOR UPDATE and an UPDATE through the ORM, which together were a
    third of a push's CPU (docs/performance.md). Needs SQLite 3.35+ or
    PostgreSQL (ON CONFLICT ... RETURNING)."""
    table = connection.ops.quote_name(StreamSequence._meta.db_table)
    streams = sorted(wanted)
    first: dict[str, int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(streams), 500):
            chunk = streams[start : start + 500]
            rows = ", ".join(["(%s, %s)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} (stream, last_seq) VALUES {rows} "
                f"ON CONFLICT (stream) DO UPDATE "
                f"SET last_seq = {table}.last_seq + excluded.last_seq "
                f"RETURNING stream, last_seq",
                [value for stream in chunk for value in (stream, wanted[stream])],
            )
            for stream, last_seq in cursor.fetchall():
                first[stream] = last_seq - wanted[stream] + 1
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
                _adapted_values(fields, chunk),
            )


def _adapted_values(fields: Sequence, rows: Sequence[Sequence]) -> list:
    """Each value adapted by its field, row after row; a value that is the very
    object the row before had in that column (the shared created_at, a
    message's id on each of its stream rows) is adapted once."""
    previous: list[tuple[object, object]] = [(_NOTHING, None)] * len(fields)
    adapted = []
    for row in rows:
        for column, (model_field, value) in enumerate(zip(fields, row, strict=True)):
            seen, prepared = previous[column]
            if value is not seen:
                prepared = model_field.get_db_prep_save(value, connection)
                previous[column] = (value, prepared)
            adapted.append(prepared)
    return adapted


_NOTHING = object()
