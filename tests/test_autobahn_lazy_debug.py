"""bridge_project.autobahn_lazy_debug against the upstream behaviour it works
around (autobahn 26.11.1). If the first test fails after an upgrade, autobahn
no longer builds debug arguments per frame and the patch can be deleted."""

from __future__ import annotations

import ast
import pprint

import autobahn.util
import pytest
import txaio
from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher

from bridge_project import autobahn_lazy_debug
from tests.support.upstream_source import parents, source_tree

txaio.use_twisted()

UPSTREAM_TIMINGS_STR = getattr(
    autobahn_lazy_debug.timings_text, "upstream", autobahn_protocol.Timings.__str__
)

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
    monkeypatch.setattr(autobahn_protocol, "pformat", pprint.pformat)
    monkeypatch.setattr(autobahn_protocol.Timings, "__str__", UPSTREAM_TIMINGS_STR)


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


@pytest.fixture
def counting_pformat(monkeypatch):
    calls = []

    def pformat(value, *args, **kwargs):
        calls.append(value)
        return pprint.pformat(value, *args, **kwargs)

    monkeypatch.setattr(pprint, "pformat", pformat)
    return calls


def _connect(factory=None):
    if factory is None:
        factory = WebSocketServerFactory()
        factory.protocol = WebSocketServerProtocol
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    return protocol


def test_upstream_uses_pformat_only_for_debug_records_and_timings():
    tree = source_tree(autobahn_protocol)
    parent_of = parents(tree)
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "pformat":
            call = parent_of[node]
            holder = parent_of[call]
            if isinstance(holder, ast.keyword):
                holder = parent_of[holder]
            uses.append(ast.unparse(holder)[:40])
    assert uses, "autobahn no longer calls pformat"
    assert "return pformat(self._timings)" in uses
    others = [use for use in uses if use != "return pformat(self._timings)"]
    assert others and all(use.startswith("self.log.debug(") for use in others)


def test_upstream_pretty_prints_the_options_of_every_connection(
    upstream_names, monkeypatch
):
    calls = []
    monkeypatch.setattr(
        autobahn_protocol, "pformat", lambda value: calls.append(value) or ""
    )
    _connect()
    assert len(calls) == 1 and len(calls[0]) == len(
        WebSocketServerProtocol.CONFIG_ATTRS
    )


def test_patched_connections_pretty_print_nothing_with_debug_off(
    patched_names, counting_pformat
):
    for _ in range(3):
        assert _connect().state == WebSocketServerProtocol.STATE_CONNECTING
    assert counting_pformat == []


def test_patched_options_record_reads_as_upstream_writes_it(upstream_names):
    # One factory: its options (a function among them) print the same twice.
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol

    def options_record():
        records = []
        globalLogPublisher.addObserver(records.append)
        WebSocketServerProtocol.log._set_log_level("debug")
        try:
            _connect(factory)
        finally:
            WebSocketServerProtocol.log._set_log_level("info")
            globalLogPublisher.removeObserver(records.append)
        return [formatEvent(r) for r in records if "autoPingInterval" in formatEvent(r)]

    upstream_text = options_record()
    autobahn_lazy_debug.install()
    assert options_record() == upstream_text and len(upstream_text) == 1


def test_timings_still_print_as_text(patched_names):
    timings = autobahn_protocol.Timings()
    timings.track("onOpen")
    assert "onOpen" in str(timings)
