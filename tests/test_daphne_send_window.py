"""bridge_project.daphne_send_window against the upstream behaviour it relies
on (daphne 4.2.3, autobahn 26.x, Twisted 26.x). If one of these fails after an
upgrade, re-read the module's docstring: the patch may be wrong or unneeded.
The end-to-end behaviour is in tests/e2e/test_slow_readers.py."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from autobahn.exception import Disconnected
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel

from bridge_project import daphne_send_window
from bridge_project.daphne_send_window import SendWindow


class SocketStandIn(FileDescriptor):
    """Twisted's buffering transport with a socket that takes what it is told."""

    connected = True

    def __init__(self) -> None:
        super().__init__()
        self.accepting = 0

    def startWriting(self) -> None:  # no reactor involved
        pass

    def stopWriting(self) -> None:
        pass

    def writeSomeData(self, data) -> int:
        return min(len(data), self.accepting)


def test_twisted_pauses_a_streaming_producer_past_buffer_size_and_resumes_it_empty():
    transport = SocketStandIn()
    window = SendWindow(transport.bufferSize)
    transport.registerProducer(window, True)

    transport.write(b"x" * transport.bufferSize)
    window.wrote(transport.bufferSize)
    assert not window.paused and window.unsent == transport.bufferSize
    transport.write(b"x")
    window.wrote(1)
    assert window.paused and window.unsent == transport.bufferSize + 1

    transport.accepting = 10
    transport.doWrite()
    assert window.paused, "resumed only once everything is written"
    transport.accepting = 10 * transport.bufferSize
    transport.doWrite()
    assert not window.paused and window.unsent == 0

    transport.connectionLost(None)
    assert window.closed


async def test_drained_returns_on_resume_and_on_close():
    window = SendWindow(10)
    window.pauseProducing()
    waiting = asyncio.ensure_future(window.drained())
    await asyncio.sleep(0)
    assert not waiting.done()
    window.resumeProducing()
    await asyncio.wait_for(waiting, 1)

    window.pauseProducing()
    waiting = asyncio.ensure_future(window.drained())
    await asyncio.sleep(0)
    window.stopProducing()
    await asyncio.wait_for(waiting, 1)


def test_the_upgrade_requests_http_channel_stays_the_transports_producer():
    """Why attach() unregisters a producer before registering its own."""
    transport = StringTransport()
    channel = HTTPChannel()
    channel.makeConnection(transport)
    assert transport.producer is channel


def test_daphne_hands_protocol_and_scope_to_create_application():
    parameters = list(inspect.signature(Server.create_application).parameters)
    assert parameters == ["self", "protocol", "scope"]


def closing_protocol() -> WebSocketProtocol:
    protocol = WebSocketProtocol()
    protocol.state = WebSocketProtocol.STATE_CLOSING
    protocol.client_addr = ["127.0.0.1", 50000]
    return protocol


def test_autobahn_raises_on_a_send_while_closing_and_the_patch_drops_it():
    daphne_send_window.install()
    upstream = WebSocketProtocol.handle_reply.upstream
    message = {"type": "websocket.send", "text": "late"}
    # The error that reached the log as "Exception inside application".
    with pytest.raises(Disconnected, match="Attempt to send on a closed protocol"):
        upstream(closing_protocol(), message)
    WebSocketProtocol.handle_reply(closing_protocol(), message)  # dropped quietly
