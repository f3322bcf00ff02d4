"""bridge_project.autobahn_shared_options against autobahn 26.11.1 and daphne
4.2.3. If the first test fails after an upgrade, autobahn copies options some
other way: re-read WebSocketProtocol._connectionMade."""

from __future__ import annotations

import sys

import pytest
import txaio
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet.testing import StringTransport

from bridge_project import autobahn_shared_options

txaio.use_twisted()


class ServerStandIn:
    """What daphne's WebSocketFactory keeps of its server."""


@pytest.fixture
def factory():
    autobahn_shared_options.install()
    factory = WebSocketFactory(ServerStandIn, server="daphne")
    factory.setProtocolOptions(autoPingTimeout=7, allowNullOrigin=True)
    return factory


def connected(factory, cls=None):
    protocol = factory.buildProtocol(None)
    if cls is not None:
        protocol.__class__ = cls
    protocol.makeConnection(StringTransport())
    return protocol


def test_upstream_copies_every_option_the_protocol_lacks_onto_the_instance(
    factory,
):
    plain = connected(factory, WebSocketProtocol)
    copied = set(WebSocketProtocol.CONFIG_ATTRS) & set(vars(plain))
    assert copied == set(WebSocketProtocol.CONFIG_ATTRS)
    assert len(copied) >= 25


def test_options_stay_on_the_class_and_read_as_the_factorys(factory):
    protocol = connected(factory)
    assert isinstance(protocol, WebSocketProtocol)
    assert not set(WebSocketProtocol.CONFIG_ATTRS) & set(vars(protocol))
    for name in WebSocketProtocol.CONFIG_ATTRS:
        assert getattr(protocol, name) is getattr(factory, name), name
    assert protocol.autoPingTimeout == 7


def test_a_function_option_is_not_bound_as_a_method(factory):
    def accept(offers):
        return ("accepted", offers)

    factory.setProtocolOptions(perMessageCompressionAccept=accept)
    protocol = connected(factory)
    assert protocol.perMessageCompressionAccept([1]) == ("accepted", [1])


def test_changed_factory_options_reach_new_connections_only(factory):
    first = connected(factory)
    factory.setProtocolOptions(autoPingTimeout=11)
    second = connected(factory)
    assert (first.autoPingTimeout, second.autoPingTimeout) == (7, 11)
    second.autoPingTimeout = 3  # a protocol may still set its own
    assert (connected(factory).autoPingTimeout, second.autoPingTimeout) == (11, 3)


def test_a_connection_dict_is_smaller(factory):
    plain = connected(factory, WebSocketProtocol)
    shared = connected(factory)
    assert len(vars(shared)) <= len(vars(plain)) - 25
    assert sys.getsizeof(vars(shared)) <= sys.getsizeof(vars(plain))
