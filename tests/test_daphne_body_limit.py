"""bridge_project.daphne_body_limit on the real daphne and Twisted classes.

Drives daphne's WebRequest through Twisted's real HTTPChannel over a string
transport, so these fail if either upstream stops calling gotLength /
handleContentChunk / requestReceived the way the patch relies on (the e2e
tests in tests/e2e/test_body_limit.py check the same against a process).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from daphne.http_protocol import WebRequest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import http

from bridge_project import daphne_body_limit

LIMIT = 1024


class Server:
    """The parts of daphne's Server a WebRequest calls before `process`."""

    def __init__(self) -> None:
        self.processed: list[WebRequest] = []

    def protocol_connected(self, request) -> None:
        pass

    def protocol_disconnected(self, request) -> None:
        pass


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def channel(clock) -> Iterator[tuple[http.HTTPChannel, StringTransport, Server]]:
    previous = getattr(WebRequest, "max_body_bytes", None)
    daphne_body_limit.install(LIMIT)
    server = Server()
    channel = http.HTTPChannel()
    channel.requestFactory = WebRequest
    channel.factory = SimpleNamespace(server=server)
    channel.callLater = clock.callLater
    transport = StringTransport()
    channel.makeConnection(transport)
    original_process = WebRequest.process
    WebRequest.process = lambda request: server.processed.append(request)
    try:
        yield channel, transport, server
    finally:
        WebRequest.process = original_process
        if previous is not None:
            daphne_body_limit.install(previous)


def head(*headers: str) -> bytes:
    lines = ["POST /sse/push HTTP/1.1", "Host: localhost", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_refused(transport: StringTransport, clock: Clock) -> None:
    reply = transport.value()
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"Connection: close\r\n" in rest
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {
        "error": "too_large",
        "message": f"The body is over {LIMIT} bytes.",
        "detail": {"max_bytes": LIMIT},
    }
    # Nothing more is read; the close comes once the client had time to read.
    assert transport.producerState == "paused"
    assert not transport.disconnecting
    clock.advance(daphne_body_limit.LINGER_SECONDS)
    assert transport.disconnecting


def test_a_declared_length_over_the_limit_is_refused_at_the_headers(channel, clock):
    http_channel, transport, server = channel
    http_channel.dataReceived(
        head(f"Content-Length: {LIMIT + 1}", "Expect: 100-continue")
    )
    assert_refused(transport, clock)
    assert b"100 Continue" not in transport.value()
    http_channel.dataReceived(b"x" * (LIMIT + 1))  # arrives anyway: dropped
    assert server.processed == []
    assert http_channel.requests[0].content is None  # nothing was stored


def test_a_chunked_body_is_refused_at_the_first_byte_over_the_limit(channel, clock):
    http_channel, transport, server = channel
    http_channel.dataReceived(head("Transfer-Encoding: chunked"))
    request = http_channel.requests[0]
    chunk = b"x" * 512
    http_channel.dataReceived(b"200\r\n" + chunk + b"\r\n")
    http_channel.dataReceived(b"200\r\n" + chunk + b"\r\n")
    assert transport.value() == b""  # exactly the limit: still reading
    http_channel.dataReceived(b"1\r\nx\r\n")
    assert_refused(transport, clock)
    stored = request.content.tell()
    http_channel.dataReceived(b"200\r\n" + chunk + b"\r\n0\r\n\r\n")
    assert request.content.tell() == stored == 2 * 512
    assert server.processed == []


def test_a_body_within_the_limit_reaches_the_application(channel):
    http_channel, transport, server = channel
    http_channel.dataReceived(head("Transfer-Encoding: chunked"))
    http_channel.dataReceived(b"4\r\n{}{}\r\n0\r\n\r\n")
    assert transport.value() == b""
    assert len(server.processed) == 1
    content = server.processed[0].content
    content.seek(0)
    assert content.read() == b"{}{}"


def test_installing_again_only_changes_the_limit(channel):
    patched = WebRequest.handleContentChunk
    daphne_body_limit.install(LIMIT + 1)
    assert WebRequest.handleContentChunk is patched
    assert WebRequest.max_body_bytes == LIMIT + 1
