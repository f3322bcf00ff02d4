"""API errors that SPEC §6 names and DRF lacks; raised by both apps."""

from rest_framework import exceptions, status


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class Conflict(exceptions.APIException):
    """409: the request does not fit the current state of what it names (a
    streamed message that has ended, SPEC §9); `code` says how."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail, code)
        self.default_code = code


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "A backing service is unavailable; nothing was accepted. Retry later."
    )
    default_code = "unavailable"
