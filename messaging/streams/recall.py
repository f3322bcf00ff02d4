"""Recalling a message (SPEC §9): kept as a tombstone, taken back live.

The Message row stays, with `data` NULL and `recalled_at` set, so every
stream keeps its `seq` without a gap: history and resume show it as
`"data": null, "recalled": true`. After commit, every stream the message is in
gets one live-only `recall` frame on its group (a personal stream's user, a
topic's subscribers), through the one door to the channel layer.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from messaging import frames
from messaging.models import Message, StreamEntry
from messaging.streams import publish
from messaging.streams.names import stream_group

logger = logging.getLogger(__name__)


def message_get(message_id: str) -> Message | None:
    """The stored message with this id; None when unknown or not a UUID."""
    try:
        key = uuid.UUID(message_id)
    except ValueError:
        return None
    return Message.objects.filter(pk=key).first()


def message_recall(*, message: Message) -> list[str]:
    """Make the message a tombstone; returns the streams it is in. Recalling
    again changes nothing stored and publishes the `recall` frames again (a
    retry after a Redis failure still reaches live connections)."""
    with transaction.atomic():
        Message.objects.filter(pk=message.pk, recalled_at__isnull=True).update(
            data=None, recalled_at=timezone.now()
        )
        streams = list(
            StreamEntry.objects.filter(message_id=message.pk)
            .order_by("stream")
            .values_list("stream", flat=True)
        )
        frame = frames.encode(
            frames.recall_frame(message_id=str(message.pk), topic=message.topic)
        )
        transaction.on_commit(lambda: _announce(frame, streams))
    return streams


def _announce(frame: str, streams: list[str]) -> None:
    """The tombstone is stored whatever Redis does: a failed publish is
    logged, not raised."""
    outgoing = [
        publish.Outgoing(
            stream_group(stream),
            publish.deliver_event(frame, stream=stream, seq=None),
        )
        for stream in streams
    ]
    if not outgoing:
        return
    try:
        publish.publish_blocking(outgoing)
    except publish.LayerUnavailable as exc:
        logger.warning("message recalled, but live connections were not told: %s", exc)
