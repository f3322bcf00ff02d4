"""bridge_project.daphne_idle_protocol against daphne 4.2.3 and autobahn
26.11.1. If one of the first three tests fails after an upgrade, daphne or
autobahn read the protocol's attributes in a new way: re-read the methods
the failure names before keeping the patch."""

from __future__ import annotations

import ast
import os
import struct
import sys

import pytest
import txaio
from daphne import server as daphne_server
from daphne import ws_protocol as daphne_ws_protocol
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from bridge_project import daphne_idle_protocol
from bridge_project.daphne_idle_protocol import (
    AUTOBAHN_HANDSHAKE_ONLY,
    FRESH_VALUES,
    HANDSHAKE_ONLY,
    OpenedRequest,
)
from tests.support.upstream_source import parents, source_tree

txaio.use_twisted()

from autobahn.twisted import websocket as autobahn_twisted  # noqa: E402
from autobahn.websocket import protocol as autobahn_protocol  # noqa: E402


def _methods(module, tree=None):
    tree = tree or source_tree(module)
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef):
            for node in cls.body:
                if isinstance(node, ast.FunctionDef):
                    yield cls.name, node


def _self_attributes(function: ast.FunctionDef):
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            yield node


def test_autobahn_reads_the_handshake_attributes_only_in_the_handshake():
    readers = {
        (cls, function.name)
        for cls, function in _methods(autobahn_protocol)
        if cls != "WebSocketClientProtocol"
        for node in _self_attributes(function)
        if node.attr in AUTOBAHN_HANDSHAKE_ONLY
    }
    assert readers == {
        ("WebSocketServerProtocol", "processHandshake"),
        ("WebSocketServerProtocol", "succeedHandshake"),
    }


def test_daphne_reads_its_handshake_attributes_only_in_on_connect():
    tree = source_tree(daphne_ws_protocol)
    parent_of = parents(tree)
    outside_on_connect = []
    request_reads = set()
    for cls, function in _methods(daphne_ws_protocol, tree):
        if cls != "WebSocketProtocol" or function.name == "onConnect":
            continue
        for node in _self_attributes(function):
            if node.attr in HANDSHAKE_ONLY:
                outside_on_connect.append((function.name, node.attr))
            if node.attr == "request":
                request_reads.add(ast.unparse(parent_of[node]))
    assert outside_on_connect == []
    # daphne's access log reads the path, and nothing else of the request.
    assert request_reads == {"self.request.path"}


def test_nothing_deletes_or_lists_the_attributes_given_class_defaults():
    modules = (autobahn_protocol, autobahn_twisted, daphne_ws_protocol, daphne_server)
    for module in modules:
        tree = source_tree(module)
        for node in ast.walk(tree):
            if isinstance(node, ast.Delete):
                for target in node.targets:
                    assert not (
                        isinstance(target, ast.Attribute)
                        and target.attr in FRESH_VALUES
                    ), (module.__name__, ast.unparse(node))
            if isinstance(node, ast.Attribute) and node.attr == "__dict__":
                assert ast.unparse(node.value) != "self", module.__name__
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "vars":
                pytest.fail(f"{module.__name__} calls {ast.unparse(node)}")


class ServerStandIn:
    """What daphne's WebSocketProtocol uses of its Server."""

    root_path = ""
    proxy_forwarded_address_header = None

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.actions: list[tuple[str, dict]] = []
        self.scope: dict | None = None

    def protocol_connected(self, protocol) -> None:
        pass

    def protocol_disconnected(self, protocol) -> None:
        pass

    def create_application(self, protocol, scope):
        self.scope = scope
        return self

    def put_nowait(self, event: dict) -> None:  # the application's queue
        self.events.append(event)

    def log_action(self, protocol: str, action: str, details: dict) -> None:
        self.actions.append((action, details))


HANDSHAKE = (
    b"GET /ws?user_id=u1 HTTP/1.1\r\n"
    b"Host: bridge.example\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"User-Agent: bridge-tests\r\n"
    b"\r\n"
)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked frame, as a client must send it (RFC 6455 §5.3)."""
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def opened(server: ServerStandIn) -> WebSocketProtocol:
    factory = WebSocketFactory(server, server="daphne")
    protocol = factory.buildProtocol(None)
    protocol._raw_query_string = b"user_id=u1"  # as daphne's HTTP side sets it
    transport = StringTransport()
    protocol.makeConnection(transport)
    # daphne's HTTP channel hands over a transport with its producer registered.
    transport.registerProducer(protocol, True)
    protocol.dataReceived(HANDSHAKE)
    assert server.events == [{"type": "websocket.connect"}]
    protocol.handle_reply({"type": "websocket.accept"})
    assert protocol.state == protocol.STATE_OPEN
    return protocol


@pytest.fixture
def upstream(monkeypatch):
    """daphne's protocol as shipped, for comparison."""
    monkeypatch.setattr(
        WebSocketProtocol,
        "onOpen",
        getattr(WebSocketProtocol.onOpen, "upstream", WebSocketProtocol.onOpen),
    )


@pytest.fixture
def installed():
    daphne_idle_protocol.install()


def test_an_open_connection_keeps_none_of_its_handshake(installed):
    server = ServerStandIn()
    protocol = opened(server)
    kept = vars(protocol)
    assert not HANDSHAKE_ONLY & set(kept)
    assert not {
        name for name, value in kept.items() if FRESH_VALUES.get(name, ...) == value
    }
    assert kept["request"].path == "/ws" and type(kept["request"]) is OpenedRequest
    # The scope daphne gave the application is untouched.
    assert (b"user-agent", b"bridge-tests") in server.scope["headers"]
    assert server.scope["query_string"] == b"user_id=u1"


def test_an_open_connection_dict_is_about_half_the_size(installed, monkeypatch):
    protocol = opened(ServerStandIn())
    with monkeypatch.context() as upstream_only:
        upstream_only.setattr(
            WebSocketProtocol, "onOpen", WebSocketProtocol.onOpen.upstream
        )
        plain = opened(ServerStandIn())
    assert len(vars(protocol)) <= len(vars(plain)) - 40
    # 832 against 1,584 bytes: a table of 64 slots instead of 128.
    assert sys.getsizeof(vars(protocol)) < 0.6 * sys.getsizeof(vars(plain))


def test_every_attribute_reads_as_before(installed, monkeypatch):
    with monkeypatch.context() as upstream_only:
        upstream_only.setattr(
            WebSocketProtocol, "onOpen", WebSocketProtocol.onOpen.upstream
        )
        plain = opened(ServerStandIn())
    protocol = opened(ServerStandIn())
    skipped = HANDSHAKE_ONLY | {
        "request",  # its path, checked above
        # different objects of the same kind on every connection:
        "is_closed", "is_open", "_transport_details", "factory", "transport",
        "trafficStats", "send_queue", "utf8validator", "server",
        "application_queue", "socket_opened", "last_ping", "_results",
    }  # fmt: skip
    # The options, set per factory: see test_autobahn_shared_options.py.
    skipped |= set(WebSocketProtocol.CONFIG_ATTRS)
    for name in set(vars(plain)) - skipped:
        assert getattr(protocol, name) == getattr(plain, name), name


def test_messages_flow_both_ways_and_a_close_is_clean(installed):
    server = ServerStandIn()
    protocol = opened(server)
    transport = protocol.transport
    transport.clear()

    protocol.dataReceived(client_frame(0x1, b'{"type":"ping"}'))
    received = {"type": "websocket.receive", "text": '{"type":"ping"}'}
    assert server.events[-1] == received

    protocol.handle_reply({"type": "websocket.send", "text": "pong"})
    assert transport.value() == b"\x81\x04pong"
    transport.clear()

    protocol.dataReceived(client_frame(0x8, struct.pack("!H", 1000)))
    assert transport.value() == b"\x88\x02" + struct.pack("!H", 1000)  # the reply
    assert protocol.remoteCloseCode == 1000 and protocol.closedByMe is False
    protocol.connectionLost(Failure(ConnectionDone()))
    assert protocol.wasClean is True
    assert server.events[-1] == {"type": "websocket.disconnect", "code": 1000}
    assert server.actions[-1] == (
        "disconnected",
        {"path": "/ws", "client": "192.168.1.1:54321"},  # StringTransport's peer
    )


def test_a_server_close_still_works(installed):
    server = ServerStandIn()
    protocol = opened(server)
    protocol.transport.clear()
    protocol.handle_reply({"type": "websocket.close", "code": 4001})
    assert protocol.transport.value() == b"\x88\x02" + struct.pack("!H", 4001)
    assert protocol.closedByMe is True and protocol.localCloseCode == 4001


def test_install_is_idempotent(installed):
    on_open = WebSocketProtocol.onOpen
    daphne_idle_protocol.install()
    assert WebSocketProtocol.onOpen is on_open
