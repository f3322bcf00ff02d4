"""Refuse an HTTP body over BRIDGE_MAX_BODY_BYTES while daphne is still reading it.

Works around daphne 4.2 (`daphne.http_protocol.WebRequest`) on Twisted 26
(`twisted.web.http.Request`/`HTTPChannel`), neither of which bounds a body:
Twisted writes every byte the client sends into the request's content file
(`gotLength` makes it, `handleContentChunk` fills it, a temporary file past
100 kB or when chunked), and only when the body is complete does daphne's
`WebRequest.process` copy the whole file into the application's queue, in
memory, before the application (and Bridge's own limit) sees a byte. A 1.5 GB
chunked upload took one process from 105 MB to 1.68 GB of RSS; a larger one
kills it with every socket on it.

So the limit is enforced where the bytes arrive, on the request object:

- `gotLength`: a declared Content-Length over the limit is refused before a
  byte of the body is read (and before `Expect: 100-continue` is answered);
- `handleContentChunk`: bytes are counted as they are decoded (identity or
  chunked), and the request is refused at the first byte over the limit;
- `requestReceived`: a refused request never reaches the application.

The refusal is a 413 in the JSON error shape with `Connection: close`. Then
nothing more is read (the socket is paused, so a client still sending is held
back by TCP, at no cost here) and the connection is closed LINGER_SECONDS
later. Closing at once would be a reset for a client still uploading, and a
reset can discard the 413 before the client reads it: curl streaming a body
reported "Send failure: Broken pipe" and never saw the reply. The pause gives
it time to read the 413 and stop (RFC 9112 §9.6 on closing early).
A chunked body within the limit goes on as before (bridge_project/
asgi_handler.py gives it a Content-Length so DRF reads it).
"""

from __future__ import annotations

import json

from messaging.api.exceptions import error_body

INSTALLED_MARK = "_bridge_body_limit"
# How long a refused connection stays open, unread, for the client to read
# the 413 before the close.
LINGER_SECONDS = 2.0


def too_large_body(limit: int) -> bytes:
    """The 413 reply's JSON, shared with the ASGI handler's own check."""
    return json.dumps(
        error_body(
            "too_large",
            f"The body is over {limit} bytes.",
            {"max_bytes": limit},
        )
    ).encode()


def too_large_response(limit: int) -> bytes:
    """A whole HTTP/1.1 413 response, written straight to the transport."""
    body = too_large_body(limit)
    head = (
        "HTTP/1.1 413 Request Entity Too Large\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def install(max_body_bytes: int) -> None:
    """Bound every HTTP request body daphne reads in this process."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # another ASGI server: asgi_handler's check still applies
        return
    WebRequest.max_body_bytes = max_body_bytes
    if getattr(WebRequest, INSTALLED_MARK, False):
        return
    got_length = WebRequest.gotLength
    handle_content_chunk = WebRequest.handleContentChunk
    request_received = WebRequest.requestReceived

    def bounded_got_length(self, length):
        self._bridge_body_bytes = 0
        self._bridge_refused = False
        if length is not None and length > self.max_body_bytes:
            # Before Twisted answers 100-continue: the client need not send it.
            self.requestHeaders.removeHeader(b"Expect")
            _refuse(self)
            return
        got_length(self, length)

    def counted_content_chunk(self, data):
        if self._bridge_refused:
            return
        self._bridge_body_bytes += len(data)
        if self._bridge_body_bytes > self.max_body_bytes:
            _refuse(self)
            return
        handle_content_chunk(self, data)

    def refused_requests_stop_here(self, command, path, version):
        if self._bridge_refused:
            return
        request_received(self, command, path, version)

    WebRequest.gotLength = bounded_got_length
    WebRequest.handleContentChunk = counted_content_chunk
    WebRequest.requestReceived = refused_requests_stop_here
    setattr(WebRequest, INSTALLED_MARK, True)


def _refuse(request) -> None:
    request._bridge_refused = True
    channel = request.channel
    if channel is None or channel.transport is None:
        return
    channel.transport.write(too_large_response(request.max_body_bytes))
    channel.transport.pauseProducing()  # read nothing more
    # Harmless if the client has closed first.
    channel.callLater(LINGER_SECONDS, channel.loseConnection)
