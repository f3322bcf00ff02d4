"""HTTP push API (SPEC §6): parse, validate, hand over to delivery, reply."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging import delivery, metrics
from messaging.delivery import PushReceipt, PushRequest
from messaging.exceptions import ServiceUnavailable
from messaging.serializers import (
    BatchReplySerializer,
    BatchSerializer,
    PushReplySerializer,
    PushSerializer,
    push_reply,
)


class PushView(APIView):
    @extend_schema(request=PushSerializer, responses={202: PushReplySerializer})
    def post(self, request: Request) -> Response:
        started = time.perf_counter()
        serializer = PushSerializer(data=json_body(request))
        serializer.is_valid(raise_exception=True)
        (receipt,) = deliver([serializer.push_request()], started)
        return Response(push_reply(receipt), status=202)


class PushBatchView(APIView):
    @extend_schema(request=BatchSerializer, responses={202: BatchReplySerializer})
    def post(self, request: Request) -> Response:
        started = time.perf_counter()
        serializer = BatchSerializer(data=json_body(request))
        serializer.is_valid(raise_exception=True)
        receipts = deliver(serializer.push_requests(), started)
        return Response({"results": [push_reply(r) for r in receipts]}, status=202)


def json_body(request: Request) -> Any:
    """The parsed body. DRF reads a body with no Content-Type as empty; SPEC: 415."""
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(request.content_type or "(none)")
    return request.data


def deliver(requests: Sequence[PushRequest], started: float) -> list[PushReceipt]:
    try:
        receipts = delivery.push_batch(requests)
    except (delivery.LayerUnavailable, DatabaseError) as exc:
        raise ServiceUnavailable() from exc
    metrics.push_latency_seconds.observe(time.perf_counter() - started)
    return receipts
