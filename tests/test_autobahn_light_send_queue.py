"""bridge_project.autobahn_light_send_queue against autobahn 26.11.1. If the
first test fails after an upgrade, autobahn uses `deque` or its send queue
in some new way: re-read WebSocketProtocol.sendData, _trigger and _send."""

from __future__ import annotations

import ast
import inspect
import sys

import pytest
import txaio
from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet.testing import StringTransport

from bridge_project import autobahn_light_send_queue
from bridge_project.autobahn_light_send_queue import SendQueue
from tests.support.upstream_source import parents, source_tree

txaio.use_twisted()

from autobahn.twisted.websocket import (  # noqa: E402  (after choosing Twisted)
    WebSocketServerFactory,
    WebSocketServerProtocol,
)


def _uses_in_upstream_module():
    tree = source_tree(autobahn_protocol)
    parent_of = parents(tree)
    deque_uses, queue_uses = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "deque":
            deque_uses.append(ast.unparse(parent_of[node]))
        if isinstance(node, ast.Attribute) and node.attr == "send_queue":
            use = parent_of[node]
            if isinstance(use, ast.Attribute):  # self.send_queue.append(...)
                use = use.attr
            elif isinstance(use, ast.Call):  # len(self.send_queue)
                use = ast.unparse(use.func)
            else:
                use = type(use).__name__
            queue_uses.append(use)
    return deque_uses, set(queue_uses)


def test_upstream_uses_deque_only_for_the_send_queue_and_only_three_ways():
    deque_uses, queue_uses = _uses_in_upstream_module()
    assert deque_uses == ["deque()"]
    # Assign: the one `self.send_queue = deque()` in _connectionMade.
    assert queue_uses == {"Assign", "len", "append", "popleft"}
    # The import itself is what install() rebinds.
    assert "from collections import deque" in inspect.getsource(autobahn_protocol)


@pytest.fixture
def upstream_deque(monkeypatch):
    from collections import deque

    monkeypatch.setattr(autobahn_protocol, "deque", deque)


@pytest.fixture
def light_queue(monkeypatch, upstream_deque):
    autobahn_light_send_queue.install()


@pytest.fixture
def later_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(txaio, "call_later", lambda delay, fn, *a: calls.append(fn))
    return calls


def _connected():
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    return protocol


def test_a_connection_gets_the_light_queue(light_queue):
    protocol = _connected()
    assert type(protocol.send_queue) is SendQueue
    assert len(protocol.send_queue) == 0
    assert (
        sys.getsizeof(protocol.send_queue)
        < sys.getsizeof(__import__("collections").deque()) / 4
    )


def test_install_is_idempotent(light_queue):
    autobahn_light_send_queue.install()
    assert autobahn_protocol.deque is SendQueue


def test_chopped_sends_go_out_whole_and_in_order(light_queue, later_calls):
    protocol = _connected()
    written = protocol.transport.value()
    protocol.sendData(b"abcdefg", chopsize=3)
    protocol.sendData(b"XY", sync=True)
    protocol.sendData(b"Z")  # queued behind the others, not written past them
    while later_calls:
        later_calls.pop(0)()
    assert protocol.transport.value()[len(written) :] == b"abcdefgXYZ"
    assert len(protocol.send_queue) == 0 and protocol.triggered is False


def test_send_queue_is_first_in_first_out():
    queue = SendQueue()
    queue.append(1)
    queue.append(2)
    assert (queue.popleft(), len(queue), queue.popleft(), len(queue)) == (1, 1, 2, 0)
    with pytest.raises(IndexError):
        queue.popleft()
