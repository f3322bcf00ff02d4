"""Reads of stored messages: a stream's newest seq, and pages of a stream."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Max

from messaging import frames
from messaging.models import StreamEntry, StreamSequence
from messaging.streams.names import stream_owner

PAGE_SIZE = 200


@dataclass(frozen=True)
class StoredFrame:
    seq: int
    text: str


def last_seq(stream: str) -> int:
    """The highest seq stored in the stream, 0 when none (SPEC §2 `connected`)."""
    found = StreamEntry.objects.filter(stream=stream).aggregate(Max("seq"))
    return found["seq__max"] or 0


def current_seq(stream: str) -> int:
    """The last seq the stream handed out, 0 when none, whether or not that
    message is still kept (SPEC §8 `subscribed`: "the topic's current last
    seq"): after a reset or a purge the next message is this plus one, so a
    cursor put here meets it without a gap."""
    found = (
        StreamSequence.objects.filter(stream=stream)
        .values_list("last_seq", flat=True)
        .first()
    )
    return found or 0


def frames_after(
    stream: str, *, after_seq: int, upto_seq: int | None = None, limit: int = PAGE_SIZE
) -> list[StoredFrame]:
    """Up to `limit` stored messages of the stream, after_seq < seq <= upto_seq."""
    entries = StreamEntry.objects.filter(stream=stream, seq__gt=after_seq)
    if upto_seq is not None:
        entries = entries.filter(seq__lte=upto_seq)
    entries = entries.select_related("message").order_by("seq")[:limit]
    return [
        StoredFrame(seq=entry.seq, text=frames.encode(stored_message_frame(entry)))
        for entry in entries
    ]


def stored_message_frame(entry: StreamEntry) -> dict:
    """The `message` frame of a stored entry, as it went out live (SPEC §3, §8)."""
    message = entry.message
    return frames.message_frame(
        message_id=str(message.id),
        seq=entry.seq,
        event=message.event,
        sender=message.sender,
        recipient=stream_owner(entry.stream),
        data=message.data,
        created_at=message.created_at,
        mentions=list(entry.mentions),
        topic=message.topic,
        recalled=message.recalled_at is not None,
        stream_id=message.stream_id,
        incomplete=message.incomplete,
    )


def latest_seqs(streams: Iterable[str]) -> dict[str, int]:
    """The last seq handed out per stream (one query per 500; never used: absent)."""
    names = list(streams)
    found: dict[str, int] = {}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        found.update(
            StreamSequence.objects.filter(stream__in=chunk).values_list(
                "stream", "last_seq"
            )
        )
    return found


def messages_page(
    stream: str, *, after_seq: int, limit: int
) -> tuple[list[dict], int | None]:
    """The history API's page (SPEC §6): messages without "type", oldest first,
    and the after_seq of the next page (None when this is the last)."""
    entries = list(
        StreamEntry.objects.filter(stream=stream, seq__gt=after_seq)
        .select_related("message")
        .order_by("seq")[: limit + 1]
    )
    more = len(entries) > limit
    entries = entries[:limit]
    return _history_messages(entries), (entries[-1].seq if more else None)


def messages_page_before(
    stream: str, *, before_seq: int, limit: int
) -> tuple[list[dict], int | None]:
    """ "Load older messages" (SPEC §9): the newest `limit` messages with
    seq < before_seq, returned oldest first, and the before_seq of the next
    older page (None when nothing older is kept). One query on the
    (stream, seq) index, read backwards."""
    newest_first = list(
        StreamEntry.objects.filter(stream=stream, seq__lt=before_seq)
        .select_related("message")
        .order_by("-seq")[: limit + 1]
    )
    more = len(newest_first) > limit
    entries = newest_first[:limit][::-1]
    return _history_messages(entries), (entries[0].seq if more else None)


def _history_messages(entries: list[StreamEntry]) -> list[dict]:
    messages = []
    for entry in entries:
        frame = stored_message_frame(entry)
        del frame["type"]
        messages.append(frame)
    return messages
