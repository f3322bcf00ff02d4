"""Keep autobahn's protocol options on a class, not on every connection.

Works around autobahn 26.11.1 (as daphne 4.2.3 uses it): when a connection
is made, `WebSocketProtocol._connectionMade` copies each of the 29 server
options (`CONFIG_ATTRS`: timeouts, limits, compression settings) from the
factory onto the protocol instance, unless the protocol already has the
attribute. Every idle WebSocket so carries 29 more entries in its `__dict__`,
which makes that dict the largest object a connection owns (3.2 KB at
daphne/ws_protocol.py:34 in docs/performance.md, "Memory of an idle
connection").

autobahn skips the copy for an option the protocol "already has", so the
factory's options are put on a subclass of daphne's protocol as class
attributes and each protocol daphne builds is made of that subclass. Reads
find the same values (a class attribute is as fast to read as an instance
one), a protocol that sets an option still gets its own, and the subclass is
rebuilt when the factory's options change (daphne sets them once, before it
listens).

tests/test_autobahn_shared_options.py fails when autobahn stops skipping
options the protocol has, or renames CONFIG_ATTRS.
"""

from __future__ import annotations


def options_class(factory, base: type) -> type:
    """`base` with the factory's current options as class attributes."""
    values = tuple(getattr(factory, name) for name in base.CONFIG_ATTRS)
    cached = factory.__dict__.get("_bridge_options_class")
    if (
        cached is not None
        and cached[0] is base
        and all(old is new for old, new in zip(cached[1], values, strict=True))
    ):
        return cached[2]
    subclass = type(
        base.__name__,
        (base,),
        {
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            **{
                name: _as_class_attribute(value)
                for name, value in zip(base.CONFIG_ATTRS, values, strict=True)
            },
        },
    )
    factory._bridge_options_class = (base, values, subclass)
    return subclass


def _as_class_attribute(value):
    """A function option (perMessageCompressionAccept) must not become a
    method of the protocol: read through the class, it stays the function."""
    return staticmethod(value) if hasattr(value, "__get__") else value


def install() -> None:
    try:
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:  # another ASGI server: nothing to adapt
        return
    if getattr(WebSocketFactory, "_bridge_shared_options", False):
        return
    build_protocol = WebSocketFactory.buildProtocol

    def build_protocol_with_shared_options(self, addr):
        protocol = build_protocol(self, addr)
        protocol.__class__ = options_class(self, type(protocol))
        return protocol

    build_protocol_with_shared_options.upstream = build_protocol
    WebSocketFactory.buildProtocol = build_protocol_with_shared_options
    WebSocketFactory._bridge_shared_options = True
