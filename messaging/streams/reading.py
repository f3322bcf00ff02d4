"""Read positions (SPEC §9 "Reading and receipts"): how far a user has read
each of its streams, and how many kept messages lie beyond.

A position only moves forward, and never past the last seq the stream has
handed out (StreamSequence): a `read` naming a higher seq is clamped to it,
so a client that reads "everything" may send MAX_SEQ. A stream never read is
at 0. Unread counts the stream's kept entries above the position: retention
and a topic reset lower it; a topic's count includes the user's own messages.

Each function is one query (two for the summary's topic list) on the
(stream, seq) and (user_id, stream) unique indexes: sync, called from request
threads or through ws_database.run_db.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from messaging.models import ReadPosition, StreamEntry, StreamSequence, TopicMember
from messaging.streams import topics
from messaging.streams.names import personal_stream

_POSITIONS = ReadPosition._meta.db_table
_ENTRIES = StreamEntry._meta.db_table
_SEQUENCES = StreamSequence._meta.db_table
_MEMBERS = TopicMember._meta.db_table

# One statement: clamp to the stream's last seq, insert the first position or
# move an existing one forward; a row comes back only when it moved.
# (`INSERT … SELECT … WHERE` followed by ON CONFLICT parses on SQLite ≥ 3.35
# and PostgreSQL alike.)
_MARK_READ = f"""
INSERT INTO {_POSITIONS} (user_id, stream, read_seq, updated_at)
SELECT %s, %s, CASE WHEN last_seq < %s THEN last_seq ELSE %s END, %s
FROM {_SEQUENCES} WHERE stream = %s AND last_seq > 0
ON CONFLICT (user_id, stream) DO UPDATE
SET read_seq = excluded.read_seq, updated_at = excluded.updated_at
WHERE {_POSITIONS}.read_seq < excluded.read_seq
RETURNING read_seq
"""

# The position (0 when none) and the kept entries above it.
_POSITION = f"""
SELECT p.read_seq,
       (SELECT COUNT(*) FROM {_ENTRIES} e
        WHERE e.stream = %s AND e.seq > p.read_seq)
FROM (SELECT COALESCE(MAX(read_seq), 0) AS read_seq FROM {_POSITIONS}
      WHERE user_id = %s AND stream = %s) p
"""
_IF_MEMBER = (
    f" WHERE EXISTS (SELECT 1 FROM {_MEMBERS} WHERE topic = %s AND user_id = %s)"
)


@dataclass(frozen=True)
class Position:
    read_seq: int
    unread: int

    def reply(self) -> dict[str, int]:
        return {"read_seq": self.read_seq, "unread": self.unread}


def mark_read(user_id: str, stream: str, seq: int) -> int | None:
    """Move the user's position in `stream` forward to `seq` (clamped to the
    stream's last seq); the new position, or None when it did not move."""
    if seq <= 0:
        return None
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_MARK_READ, [user_id, stream, seq, seq, now, stream])
        row = cursor.fetchone()
    return None if row is None else int(row[0])


# A receipt lists at most this many message ids per sender (the oldest read).
RECEIPT_MAX_IDS = 500


@dataclass(frozen=True)
class Receipt:
    """Messages of one sender that a read moved past (SPEC §9 `receipt`)."""

    sender: str
    message_ids: list[str]


def read_personal(user_id: str, seq: int) -> tuple[int | None, list[Receipt]]:
    """mark_read on the user's personal stream, and the receipts due to the
    senders of the messages it moved past: three queries when it moved, two
    when not. Two concurrent reads may both report a message: a receipt is
    at least once."""
    stream = personal_stream(user_id)
    before = (
        ReadPosition.objects.filter(user_id=user_id, stream=stream)
        .values_list("read_seq", flat=True)
        .first()
    ) or 0
    moved = mark_read(user_id, stream, seq)
    if moved is None:
        return None, []
    read = (
        StreamEntry.objects.filter(
            stream=stream, seq__gt=before, seq__lte=moved, message__sender__isnull=False
        )
        .exclude(message__sender=user_id)
        .order_by("seq")
        .values_list("message__sender", "message_id")
    )
    by_sender: dict[str, list[str]] = {}
    for sender, message_id in read.iterator():
        ids = by_sender.setdefault(sender, [])
        if len(ids) < RECEIPT_MAX_IDS:
            ids.append(str(message_id))
    return moved, [Receipt(sender, ids) for sender, ids in by_sender.items()]


def read_topic(
    user_id: str, topic: str, seq: int, *, receipts: bool
) -> tuple[int | None, bool]:
    """mark_read on a topic, and whether its subscribers get a receipt: the
    namespace has `receipts` and the reader is a member (SPEC §9). One query,
    two when a receipt may be due."""
    moved = mark_read(user_id, topic, seq)
    due = moved is not None and receipts and topics.is_member(topic, user_id)
    return moved, due


def position(user_id: str, stream: str) -> Position:
    """The user's read position in `stream` and the kept messages after it."""
    with connection.cursor() as cursor:
        cursor.execute(_POSITION, [stream, user_id, stream])
        read_seq, unread = cursor.fetchone()
    return Position(int(read_seq), int(unread))


def member_position(user_id: str, topic: str) -> Position | None:
    """position(), when the user is a member of the topic (SPEC §9
    `subscribed`); None otherwise. One query, membership included."""
    with connection.cursor() as cursor:
        cursor.execute(_POSITION + _IF_MEMBER, [topic, user_id, topic, topic, user_id])
        row = cursor.fetchone()
    return None if row is None else Position(int(row[0]), int(row[1]))


def unread(user_id: str, stream: str) -> int:
    """How many kept messages of `stream` the user has not read."""
    return position(user_id, stream).unread


def unread_summary(user_id: str) -> dict:
    """The unread API's reply (SPEC §9): the personal stream, and every topic
    the user is a member of."""
    return {
        "personal": position(user_id, personal_stream(user_id)).reply(),
        "topics": [
            {"topic": topic, **position(user_id, topic).reply()}
            for topic in topics.user_topics(user_id)
        ],
    }
