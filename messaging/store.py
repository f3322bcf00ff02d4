"""Writing messages: one transaction assigns each recipient's seqs and stores
the message once with one inbox entry per recipient (SPEC §5)."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
                InboxEntry(
                    message_id=plan.message_id,
                    user_id=recipient.user_id,
                    seq=seq,
                    mentions=list(recipient.mentions),
                )
            )
    Message.objects.bulk_create(
        Message(
            id=plan.message_id,
            event=plan.request.event,
            sender=plan.request.sender,
            data=plan.request.data,
            created_at=created_at,
        )
        for plan in durable
    )
    InboxEntry.objects.bulk_create(entries, batch_size=500)
    metrics.messages_stored_total.inc(len(entries))


def reserve_seqs(wanted: Counter[str]) -> dict[str, int]:
    """Lock each user's counter (in a fixed order, so pushes cannot deadlock) and
    hand out `wanted[user]` consecutive seqs; returns the first one per user."""
    users = sorted(wanted)
    UserSequence.objects.bulk_create(
        [UserSequence(user_id=user_id) for user_id in users], ignore_conflicts=True
    )
    counters = list(
        UserSequence.objects.select_for_update()
        .filter(user_id__in=users)
        .order_by("user_id")
    )
    first = {}
    for counter in counters:
        first[counter.user_id] = counter.last_seq + 1
        counter.last_seq += wanted[counter.user_id]
    UserSequence.objects.bulk_update(counters, ["last_seq"], batch_size=500)
    return first
