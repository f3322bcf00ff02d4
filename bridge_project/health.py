"""GET /health and GET /metrics (SPEC §6)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import caller_may
from messaging.streams import publish

logger = logging.getLogger(__name__)

_health_reply = inline_serializer(
    "Health",
    {"status": serializers.CharField(), "checks": serializers.DictField()},
)


class HealthView(APIView):
    # Load balancers ask without credentials, and must not be throttled.
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(responses={200: _health_reply, 503: _health_reply})
    def get(self, request: Request) -> Response:
        checks = {"database": _check_database(), "channel_layer": _check_layer()}
        healthy = all(value == "ok" for value in checks.values())
        return Response(
            {"status": "ok" if healthy else "unavailable", "checks": checks},
            status=200 if healthy else 503,
        )


# Each failed check says only which kind of error it was: /health answers
# anyone, and exception text names hosts, ports and database users. The text
# goes to the log.


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return _failed("database", exc)
    return "ok"


def _check_layer() -> str:
    try:
        async_to_sync(publish.check_layer)()
    except publish.LayerUnavailable as exc:
        return _failed("channel_layer", exc.__cause__ or exc)
    return "ok"


def _failed(check: str, exc: BaseException) -> str:
    logger.warning("health check %s failed: %s: %s", check, type(exc).__name__, exc)
    return f"error: {type(exc).__name__}"


class MetricsAccess(BasePermission):
    """From BRIDGE_METRICS_ALLOWED_IPS (default loopback), or with an `ops` key."""

    message = "Metrics are for allowed addresses and 'ops' keys."

    def has_permission(self, request: Request, view) -> bool:
        if request.META.get("REMOTE_ADDR") in settings.BRIDGE_METRICS_ALLOWED_IPS:
            return True
        return caller_may(request, "ops")


class MetricsView(APIView):
    permission_classes = [MetricsAccess]
    throttle_classes = []

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        return ExportToDjangoView(request._request)
