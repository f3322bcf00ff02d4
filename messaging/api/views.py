"""HTTP push API (SPEC §6): parse, validate, hand over to delivery, reply."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from django.db import DatabaseError
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import (
    ErrorDetail,
    NotFound,
    PermissionDenied,
    UnsupportedMediaType,
    ValidationError,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

from accounts.authentication import caller_may, requires
from bridge_project.api_errors import ServiceUnavailable
from bridge_project.async_api_view import AsyncAPIView
from messaging import metrics
from messaging.api import stream_push
from messaging.api.serializers import (
    BatchReplySerializer,
    BatchSerializer,
    PushReplySerializer,
    PushSerializer,
    push_request_from,
)
from messaging.event_log import log_event
from messaging.instance import INSTANCE_NAME
from messaging.streams import delivery, publish
from messaging.streams.delivery import PushReceipt, PushRequest


class PushView(AsyncAPIView):
    permission_classes = [requires("push")]

    @extend_schema(request=PushSerializer, responses={202: PushReplySerializer})
    async def post(self, request: Request) -> Response:
        started = time.perf_counter()
        attrs = validate_push(json_body(request))
        if "stream_id" in attrs:
            (part_of,) = authorize(request, [stream_push.addressing(attrs)])
            return await stream_push.push_stream_part(
                attrs, sender=part_of.sender, scope=_caller_scope(request)
            )
        push = push_request_from(attrs)
        try:
            (receipt,) = await deliver(request, [push], started)
        except delivery.UnknownNamespaces as unknown:
            raise NotFound(unknown.refusals[0]) from None
        return _accepted(receipt.reply(), [receipt])


class PushBatchView(AsyncAPIView):
    permission_classes = [requires("push")]

    @extend_schema(request=BatchSerializer, responses={202: BatchReplySerializer})
    async def post(self, request: Request) -> Response:
        started = time.perf_counter()
        serializer = BatchSerializer(data=json_body(request))
        serializer.is_valid(raise_exception=True)
        pushes = serializer.push_requests()
        try:
            receipts = await deliver(request, pushes, started)
        except delivery.UnknownNamespaces as unknown:
            # A batch is all-or-nothing (SPEC §6): 400, by the items' indexes.
            raise ValidationError(
                {
                    "messages": {
                        str(index): {"topic": [ErrorDetail(refusal, "not_found")]}
                        for index, refusal in unknown.refusals.items()
                    }
                }
            ) from None
        return _accepted({"results": [r.reply() for r in receipts]}, receipts)


_validators = threading.local()


def validate_push(body: Any) -> dict[str, Any]:
    """A push's validated fields, or ValidationError as is_valid would raise it.

    One serializer per thread (the event loop's), used again and again: DRF builds a
    serializer's fields (a deep copy) per instance, which cost more than
    validating a push."""
    serializer = getattr(_validators, "push", None)
    if serializer is None:
        serializer = _validators.push = PushSerializer()
    try:
        return serializer.validate_item(body)
    except ValidationError as exc:
        raise ValidationError(as_serializer_error(exc)) from None


def _accepted(body: dict, receipts: list[PushReceipt]) -> Response:
    headers = {}
    if any(receipt.replayed is not None for receipt in receipts):
        headers["Idempotent-Replayed"] = "true"
    return Response(body, status=202, headers=headers)


def authorize(request: Request, pushes: Sequence[PushRequest]) -> list[PushRequest]:
    """Apply SPEC §4 to each push: who it is from, and what the key may do."""
    may_name_sender = caller_may(request, "sender")
    default_sender = getattr(request.user, "handle", None)
    key_id = getattr(request.user, "key_id", None)
    authorized = []
    for push in pushes:
        if push.broadcast and not caller_may(request, "broadcast"):
            raise PermissionDenied("Broadcast needs the 'broadcast' permission.")
        if push.sender is not None and not may_name_sender:
            raise PermissionDenied("Naming a sender needs the 'sender' permission.")
        if push.sender is None and default_sender is not None:
            push = replace(push, sender=default_sender)
        if key_id is not None:
            push = replace(push, pushed_by_key=key_id)
        authorized.append(push)
    return authorized


def _caller_scope(request: Request) -> str:
    """Whose idempotency keys these are: an API key's, a staff user's, or in
    open mode everyone's (SPEC §5)."""
    user = request.user
    key_id = getattr(user, "key_id", None)
    if key_id is not None:
        return f"key:{key_id}"
    if getattr(user, "pk", None) is not None:
        return f"user:{user.pk}"
    return "open"


def json_body(request: Request) -> Any:
    """The parsed body. DRF reads a body with no Content-Type as empty; SPEC: 415."""
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(request.content_type or "(none)")
    return request.data


async def deliver(
    request: Request, pushes: Sequence[PushRequest], started: float
) -> list[PushReceipt]:
    pushes = authorize(request, pushes)
    try:
        receipts = await delivery.apush_batch(
            pushes, idempotency_scope=_caller_scope(request)
        )
    except (publish.LayerUnavailable, DatabaseError) as exc:
        metrics.pushes_unavailable_total.inc()
        raise ServiceUnavailable() from exc
    elapsed = time.perf_counter() - started
    metrics.push_latency_seconds.observe(elapsed)
    single = len(pushes) == 1
    log_event(
        "push",
        message_id=receipts[0].message_id if single else None,
        user_id=(
            pushes[0].targets[0] if single and len(pushes[0].targets) == 1 else None
        ),
        sender=pushes[0].sender if single else None,
        messages=len(pushes),
        recipients=sum(len(r.recipients) for r in receipts),
        replayed=sum(r.replayed is not None for r in receipts),
        instance=INSTANCE_NAME,
        ms=round(elapsed * 1000, 2),
    )
    return receipts
