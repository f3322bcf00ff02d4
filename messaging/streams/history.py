"""Reads of stored messages: the newest seq, and pages of a user's stream."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Max

from messaging import frames
from messaging.models import InboxEntry, UserSequence

PAGE_SIZE = 200


@dataclass(frozen=True)
class StoredFrame:
    seq: int
    text: str


def last_seq(user_id: str) -> int:
    """The highest seq stored for the user, 0 when none (SPEC §2 `connected`)."""
    found = InboxEntry.objects.filter(user_id=user_id).aggregate(Max("seq"))
    return found["seq__max"] or 0


def frames_after(
    user_id: str, *, after_seq: int, upto_seq: int | None = None, limit: int = PAGE_SIZE
) -> list[StoredFrame]:
    """Up to `limit` of the user's stored messages with after_seq < seq <= upto_seq."""
    entries = InboxEntry.objects.filter(user_id=user_id, seq__gt=after_seq)
    if upto_seq is not None:
        entries = entries.filter(seq__lte=upto_seq)
    entries = entries.select_related("message").order_by("seq")[:limit]
    return [
        StoredFrame(seq=entry.seq, text=frames.encode(stored_message_frame(entry)))
        for entry in entries
    ]


def stored_message_frame(entry: InboxEntry) -> dict:
    message = entry.message
    return frames.message_frame(
        message_id=str(message.id),
        seq=entry.seq,
        event=message.event,
        sender=message.sender,
        recipient=entry.user_id,
        data=message.data,
        created_at=message.created_at,
        mentions=list(entry.mentions),
    )


def latest_seqs(user_ids: Iterable[str]) -> dict[str, int]:
    """The last seq handed out per user (one query; users never pushed to: absent)."""
    users = list(user_ids)
    found: dict[str, int] = {}
    for start in range(0, len(users), 500):
        chunk = users[start : start + 500]
        found.update(
            UserSequence.objects.filter(user_id__in=chunk).values_list(
                "user_id", "last_seq"
            )
        )
    return found


def messages_page(
    user_id: str, *, after_seq: int, limit: int
) -> tuple[list[dict], int | None]:
    """The history API's page (SPEC §6): messages without "type", oldest first,
    and the after_seq of the next page (None when this is the last)."""
    entries = list(
        InboxEntry.objects.filter(user_id=user_id, seq__gt=after_seq)
        .select_related("message")
        .order_by("seq")[: limit + 1]
    )
    more = len(entries) > limit
    entries = entries[:limit]
    messages = []
    for entry in entries:
        frame = stored_message_frame(entry)
        del frame["type"]
        messages.append(frame)
    return messages, (entries[-1].seq if more else None)
