"""The one HTTP error shape: {"error", "message", "detail"} (SPEC §6)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from bridge_project.api_errors import PayloadTooLarge, ServiceUnavailable

logger = logging.getLogger(__name__)


# DRF exception class -> SPEC error code. Checked in order; subclasses first.
_CODES: list[tuple[type[Exception], str]] = [
    (PayloadTooLarge, "too_large"),
    (ServiceUnavailable, "unavailable"),
    (exceptions.ValidationError, "invalid"),
    (exceptions.ParseError, "invalid"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "not_authenticated"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
]

_MESSAGES = {
    "invalid": "The request is not valid.",
    "not_found": "Not found.",
}


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": code, "message": message, "detail": detail or {}}


def error_response_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every API error leaves in SPEC's shape."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's handler500 answers, in the same shape
    code = next(
        (c for cls, c in _CODES if isinstance(exc, cls)),
        getattr(exc, "default_code", "error"),
    )
    if isinstance(exc, exceptions.ValidationError):
        message, detail = _MESSAGES["invalid"], _validation_detail(exc.detail)
    elif isinstance(exc, exceptions.ParseError):
        message = str(exc.detail)
        detail = {"body": [{"code": "parse_error", "message": message}]}
    else:
        message, detail = str(exc.detail), {}
    headers = {}
    # Set by DRF on 401s from the first authentication class's challenge.
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    return Response(
        error_body(code, message, detail), status=exc.status_code, headers=headers
    )


def _validation_detail(detail: Any) -> Any:
    """Field errors as {"field": [{"code", "message"}]}; machine codes kept."""
    if isinstance(detail, dict):
        return {key: _validation_detail(value) for key, value in detail.items()}
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return [{"code": item.code, "message": str(item)} for item in detail]
        return [_validation_detail(item) for item in detail]
    if isinstance(detail, exceptions.ErrorDetail):
        return [{"code": detail.code, "message": str(detail)}]
    return detail


def json_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_server_error(request) -> JsonResponse:
    return JsonResponse(
        error_body("error", "Internal error; it has been logged."), status=500
    )


def json_bad_request(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("invalid", "Bad request."), status=400)


def json_forbidden(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "Forbidden."), status=403)
