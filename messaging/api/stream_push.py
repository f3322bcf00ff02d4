"""`POST /sse/push` with `stream_id`: one part of a message sent in parts
(SPEC §9), handed to the stream core (streams/streaming.py)."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from rest_framework.exceptions import ErrorDetail, NotFound, ValidationError
from rest_framework.response import Response

from bridge_project.api_errors import Conflict, ServiceUnavailable
from messaging import metrics
from messaging.streams import publish, streaming
from messaging.streams.delivery import PushRequest
from messaging.streams.topics import TopicRefused, atopic_rules


def addressing(attrs: dict[str, Any]) -> PushRequest:
    """Who the part is to and from, for the push view's checks (SPEC §4
    sender rules, §8 namespaces): those of an ordinary push."""
    return PushRequest(
        targets=(),
        event=attrs["event"],
        data=None,
        sender=attrs.get("sender"),
        topic=attrs.get("topic"),
    )


async def push_stream_part(
    attrs: dict[str, Any], *, sender: str | None, scope: str
) -> Response:
    """Send the part; 202 `{"id", "stream_id", "index", "final"}`, and on the
    final part the stored message's push reply (`recipients`, or `topic`,
    `seq` and `subscribers`). `scope` is whose stream ids these are (the
    caller's idempotency scope)."""
    part = streaming.StreamPart(
        scope=scope.replace(":", "."),
        stream_id=attrs["stream_id"],
        sender=sender,
        to=attrs.get("user_id"),
        topic=attrs.get("topic"),
        delta=attrs["delta"],
        final=attrs["final"],
        data=attrs.get("data"),
        event=attrs["event"],
        persist=attrs["persist"],
    )
    if part.topic is not None:
        try:
            await atopic_rules(part.topic)
        except TopicRefused as refused:
            raise NotFound(refused.message) from None
    try:
        accepted = await streaming.send_part(part)
    except streaming.PartRefused as refused:
        if refused.code == "too_large":
            raise ValidationError(
                {"delta": [ErrorDetail(refused.message, "too_large")]}
            ) from None
        raise Conflict(refused.code, refused.message) from None
    except (publish.LayerUnavailable, DatabaseError) as exc:
        metrics.pushes_unavailable_total.inc()
        raise ServiceUnavailable() from exc
    body: dict[str, Any] = {}
    if accepted.receipt is not None:
        body.update(accepted.receipt.reply())
    body.update(
        id=accepted.message_id,
        stream_id=part.stream_id,
        index=accepted.index,
        final=accepted.final,
    )
    return Response(body, status=202)
