"""Resetting a topic (SPEC §9): its kept messages go, its `seq` keeps counting.

StreamSequence is untouched, so the next message gets the next `seq` and a
client resuming with an old `since` sees `history_truncated`, never a reused
number. Messages that were only in the topic go with it; one that is still in
another stream (a bot's mention copy) stays there.
"""

from __future__ import annotations

import logging

from django.db import transaction

from messaging.models import Message, StreamEntry
from messaging.streams import publish

logger = logging.getLogger(__name__)

RESET = "reset"
_CHUNK = 500


def topic_reset(*, topic: str) -> int:
    """Delete the topic's kept messages; returns how many. After commit, every
    subscription of the topic on every instance ends with `unsubscribed`,
    reason `reset`, even when nothing was kept (a retry after a Redis failure
    still ends them)."""
    with transaction.atomic():
        entries = StreamEntry.objects.filter(stream=topic)
        message_ids = list(entries.values_list("message_id", flat=True))
        _, per_model = entries.delete()
        for start in range(0, len(message_ids), _CHUNK):
            Message.objects.filter(
                id__in=message_ids[start : start + _CHUNK],
                stream_entries__isnull=True,
            ).delete()
        transaction.on_commit(lambda: _end_subscriptions(topic))
    return per_model.get(StreamEntry._meta.label, 0)


def _end_subscriptions(topic: str) -> None:
    """The messages are gone whatever Redis does: a failed publish is logged,
    not raised."""
    try:
        publish.topic_reset_blocking(topic)
    except publish.LayerUnavailable as exc:
        logger.warning(
            "topic %s reset, but its subscriptions were not ended: %s", topic, exc
        )
