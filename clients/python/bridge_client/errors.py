"""Exceptions: one base, typed subclasses for the HTTP error shape (SPEC §6) and
for WebSocket refusals and closes (SPEC §2, §11)."""

from __future__ import annotations

from typing import Any


class BridgeError(Exception):
    """Anything this library raises on purpose."""


# --- HTTP -------------------------------------------------------------------------


class HTTPError(BridgeError):
    """An HTTP error reply: `{"error", "message", "detail"}` (SPEC §6)."""

    status: int
    code: str

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: dict[str, Any] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail or {}
        self.retry_after = retry_after


class InvalidRequest(HTTPError):
    """400 `invalid`: `detail` maps fields to `[{"code", "message"}]`."""


class NotAuthenticated(HTTPError):
    """401 `not_authenticated`."""


class PermissionDenied(HTTPError):
    """403 `permission_denied`."""


class NotFound(HTTPError):
    """404 `not_found` (also an unknown topic namespace)."""


class MethodNotAllowed(HTTPError):
    """405 `method_not_allowed`."""


class Conflict(HTTPError):
    """409: a streamed part refused (SPEC §9)."""


class StreamClosed(Conflict):
    """409 `stream_closed`: the stream has ended."""


class StreamConflict(Conflict):
    """409 `stream_conflict`: the stream id is open with another target."""


class TooManyStreams(Conflict):
    """409 `too_many_streams`: finish an open stream first."""


class TooLarge(HTTPError):
    """413 `too_large`: the body is over `BRIDGE_MAX_BODY_BYTES`."""


class UnsupportedMediaType(HTTPError):
    """415 `unsupported_media_type`."""


class Throttled(HTTPError):
    """429 `throttled`; `retry_after` holds the `Retry-After` seconds."""


class Unavailable(HTTPError):
    """503 `unavailable`: Redis or the database is down, or the server is busy."""


class ServerError(HTTPError):
    """Any other 5xx."""


HTTP_ERRORS_BY_CODE: dict[str, type[HTTPError]] = {
    "invalid": InvalidRequest,
    "not_authenticated": NotAuthenticated,
    "permission_denied": PermissionDenied,
    "not_found": NotFound,
    "method_not_allowed": MethodNotAllowed,
    "stream_closed": StreamClosed,
    "stream_conflict": StreamConflict,
    "too_many_streams": TooManyStreams,
    "too_large": TooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "throttled": Throttled,
    "unavailable": Unavailable,
}
HTTP_ERRORS_BY_STATUS: dict[int, type[HTTPError]] = {
    400: InvalidRequest,
    401: NotAuthenticated,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: TooLarge,
    415: UnsupportedMediaType,
    429: Throttled,
    503: Unavailable,
}


class TransportError(BridgeError):
    """The request got no reply (connection refused, reset, timed out)."""


# --- WebSocket --------------------------------------------------------------------


class FrameRefused(BridgeError):
    """The server answered a frame with `error` (SPEC §2); the connection stays."""

    def __init__(self, frame: dict[str, Any]) -> None:
        self.code: str = str(frame.get("code"))
        self.message: str = str(frame.get("message", ""))
        self.topic: str | None = frame.get("topic")
        self.retry_after_ms: int | None = frame.get("retry_after_ms")
        self.frame = frame
        super().__init__(f"{self.code}: {self.message}")


class AckTimeout(BridgeError, TimeoutError):
    """No `ack` (or `subscribed`, `refreshed`…) came within the timeout."""


class ConnectionLost(BridgeError):
    """The connection ended before the server answered the frame: whether it was
    accepted is unknown (a client `message` carries no idempotency key)."""


class NotConnected(BridgeError):
    """The client is not connected and could not connect within the timeout."""


class Closed(BridgeError):
    """The client stopped for good: `close()` was called, or the server refused it
    in a way that reconnecting cannot fix (4400, 4403, 4401 with no new token)."""

    def __init__(self, code: int | None, error: dict[str, Any] | None = None) -> None:
        self.code = code
        self.error = error or {}
        reason = self.error.get("message") or self.error.get("code") or ""
        super().__init__(f"closed with {code} {reason}".strip())


class StreamInterrupted(BridgeError):
    """The connection that owned an outgoing stream ended: stream ids belong to a
    connection (SPEC §9), so the server finishes it as incomplete."""
