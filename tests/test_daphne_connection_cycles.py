"""bridge_project.daphne_connection_cycles against the upstream behaviour it
works around (autobahn 26.11, daphne 4.2.3): a closed WebSocket protocol is a
reference cycle through its `is_closed` Deferred, and daphne leaves the
upgrade request on its HTTPChannel. If a "daphne/autobahn ..." test fails
after an upgrade, upstream no longer makes that cycle and that part can go."""

from __future__ import annotations

import gc
import types
import weakref
from collections.abc import Iterator

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory
from daphne.http_protocol import WebRequest
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

from bridge_project import daphne_connection_cycles


class ServerStandIn:
    """The two methods of daphne's Server a closing protocol calls."""

    def protocol_disconnected(self, protocol) -> None:
        pass

    def log_action(self, *args) -> None:
        pass


def closed_protocol(cls=WebSocketProtocol) -> WebSocketProtocol:
    """A daphne WebSocket protocol that was connected and lost its connection."""
    protocol = cls()
    protocol.factory = WebSocketServerFactory()
    protocol.server = ServerStandIn()
    protocol.client_addr = ["127.0.0.1", 50000]
    protocol.request = types.SimpleNamespace(path=b"/ws")
    protocol.muted = True  # no application queue to tell
    protocol.makeConnection(StringTransport())
    protocol.connectionLost(Failure(ConnectionDone()))
    return protocol


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Only reference counting frees objects, as between full collections."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_autobahn_resolves_is_closed_with_the_protocol_itself():
    protocol = closed_protocol(_unpatched_class())
    assert protocol.is_closed.called
    assert protocol.is_closed.result is protocol, "the cycle the patch breaks"


def test_upstream_leaves_a_closed_protocol_to_the_garbage_collector(no_automatic_gc):
    protocol = closed_protocol(_unpatched_class())
    freed = weakref.ref(protocol)
    del protocol
    assert freed() is not None, "upstream no longer makes a cycle: drop the patch"


def test_with_the_patch_a_closed_protocol_is_freed_by_reference_counting(
    no_automatic_gc,
):
    daphne_connection_cycles.install()
    protocol = closed_protocol()
    assert protocol.is_closed.called and protocol.is_closed.result is None
    freed = weakref.ref(protocol)
    del protocol
    assert freed() is None, "another reference cycle keeps a closed connection"


def _unpatched_class() -> type[WebSocketProtocol]:
    """daphne's protocol with autobahn's own connectionLost, patched or not."""
    return type(
        "Unpatched",
        (WebSocketProtocol,),
        {"connectionLost": daphne_connection_cycles.upstream_connection_lost()},
    )


class ProtocolStandIn:
    """What daphne hands an upgraded socket to (its WebSocket protocol)."""

    def makeConnection(self, transport) -> None:
        # As daphne_send_window.SendWindow.attach does: the channel stops being
        # the socket's producer once the socket is the WebSocket's.
        transport.unregisterProducer()
        self.transport = transport

    def dataReceived(self, data: bytes) -> None:
        self.data = data


class HttpServerStandIn(ServerStandIn):
    """What daphne's WebRequest reads of its Server on the upgrade path."""

    root_path = ""
    server_name = "daphne"
    proxy_forwarded_address_header = None
    proxy_forwarded_port_header = None
    proxy_forwarded_proto_header = None

    def __init__(self) -> None:
        self.ws_factory = types.SimpleNamespace(
            buildProtocol=lambda address: ProtocolStandIn()
        )

    def protocol_connected(self, protocol) -> None:
        pass


def upgraded_channel(request_class) -> HTTPChannel:
    """Twisted's HTTPChannel after daphne upgraded its request to a WebSocket."""
    channel = HTTPChannel()
    channel.timeOut = None  # no idle timer in the global reactor to hold it
    channel.requestFactory = request_class
    channel.factory = types.SimpleNamespace(server=HttpServerStandIn())
    channel.makeConnection(StringTransport())
    channel.dataReceived(
        b"GET /ws?user_id=alice HTTP/1.1\r\nHost: localhost\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    return channel


def test_daphne_leaves_the_upgrade_request_on_its_channel():
    unpatched = type(
        "Unpatched",
        (WebRequest,),
        {"process": daphne_connection_cycles.upstream_process()},
    )
    channel = upgraded_channel(unpatched)
    assert len(channel.requests) == 1, "upstream changed: drop that part of the patch"
    assert (
        channel.requests[0].channel is channel and channel.requests[0].transport is None
    )


def test_with_the_patch_the_upgrade_request_is_freed_by_reference_counting(
    no_automatic_gc,
):
    daphne_connection_cycles.install()
    channel = upgraded_channel(WebRequest)
    assert channel.requests == []
    freed = weakref.ref(channel)
    del channel
    assert freed() is None, "another reference cycle keeps the upgrade's channel"
