"""bridge_project.autobahn_lazy_debug against the upstream behaviour it works
around (autobahn 26.11.1). If the first test fails after an upgrade, autobahn
no longer builds debug arguments per frame and the patch can be deleted."""

from __future__ import annotations

import autobahn.util
import pytest
import txaio
from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher

from bridge_project import autobahn_lazy_debug

txaio.use_twisted()

from autobahn.twisted.websocket import (  # noqa: E402  (after choosing Twisted)
    WebSocketServerFactory,
    WebSocketServerProtocol,
)


@pytest.fixture
def open_protocol():
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    yield protocol
    protocol.transport.loseConnection()


@pytest.fixture
def style_calls(monkeypatch):
    calls = []
    style = autobahn.util.click.style

    def counting_style(*args, **kwargs):
        calls.append(args)
        return style(*args, **kwargs)

    monkeypatch.setattr(autobahn.util.click, "style", counting_style)
    return calls


@pytest.fixture
def upstream_names(monkeypatch):
    monkeypatch.setattr(autobahn_protocol, "hltype", autobahn.util.hltype)
    monkeypatch.setattr(autobahn_protocol, "hlval", autobahn.util.hlval)


@pytest.fixture
def patched_names(monkeypatch, upstream_names):
    autobahn_lazy_debug.install()


@pytest.fixture
def debug_records(open_protocol):
    records = []
    globalLogPublisher.addObserver(records.append)
    open_protocol.log._set_log_level("debug")
    yield records
    open_protocol.log._set_log_level("info")
    globalLogPublisher.removeObserver(records.append)


def test_upstream_send_data_styles_its_debug_arguments_with_debug_off(
    upstream_names, open_protocol, style_calls
):
    assert open_protocol.log._log_level == "info"
    open_protocol.sendData(b"frame")
    assert open_protocol.transport.value() == b"frame"
    assert style_calls, "autobahn no longer formats debug arguments per frame"


def test_patched_send_data_formats_nothing_with_debug_off(
    patched_names, open_protocol, style_calls
):
    for _ in range(3):
        open_protocol.sendData(b"frame")
    assert open_protocol.transport.value() == b"frame" * 3
    assert style_calls == []


def test_patched_debug_record_reads_as_upstream_writes_it(
    upstream_names, open_protocol, debug_records
):
    open_protocol.sendData(b"hello")
    upstream_text = [formatEvent(record) for record in debug_records]

    autobahn_lazy_debug.install()
    debug_records.clear()
    open_protocol.sendData(b"hello")
    patched_text = [formatEvent(record) for record in debug_records]

    assert "sent" in upstream_text[0] and "5" in upstream_text[0]
    assert patched_text == upstream_text


def test_install_is_idempotent(patched_names):
    wrapped = autobahn_protocol.hltype
    autobahn_lazy_debug.install()
    assert autobahn_protocol.hltype is wrapped
    assert wrapped.args == (autobahn.util.hltype,)


def test_lazy_highlight_formats_once_and_accepts_format_specs():
    calls = []

    def highlight(value, color="white"):
        calls.append(value)
        return f"<{value}:{color}>"

    lazy = autobahn_lazy_debug.deferred(highlight)(7, color="red")
    assert calls == []
    assert f"{lazy}|{lazy:>12}|{lazy!r}" == "<7:red>|     <7:red>|<7:red>"
    assert calls == [7]
