"""Free a closed WebSocket's objects by reference counting, not by a full GC.

autobahn (26.11) resolves each protocol's `is_closed` Deferred with the
protocol itself (`txaio.resolve(self.is_closed, self)` in
autobahn/websocket/protocol.py), so every closed connection is a reference
cycle: protocol -> is_closed -> result -> protocol, and with it the Twisted
transport, daphne's queues and our SendWindow, about 14 KB a connection.
Only a full collection frees such a cycle, and process_tuning makes those rare
on purpose (docs/performance.md), so a process whose clients reconnect grew
by that much per connection until one came: 3,000 connects and closes took a
fresh daphne from 125 to 162 MB (docs/performance.md).

Once the connection is lost nothing in daphne waits on `is_closed` any more,
so its result is dropped there: the cycle is broken and the objects go as
soon as daphne forgets the protocol.

The upgrade request is a second, smaller cycle (about 3 KB): daphne's
`WebRequest.process` hands the socket to the WebSocket protocol but leaves the
request in its `HTTPChannel`'s `requests` list, and the request points back at
the channel. The channel never reads or writes again once the transport
belongs to the WebSocket, so the request is taken off its list there.

Written against daphne 4.2.3 and autobahn 26.11.1;
tests/test_daphne_connection_cycles.py fails if upstream stops making either
cycle (then that part can go) or makes another.
"""

from __future__ import annotations


def install() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another ASGI server: nothing to adapt
        return
    if getattr(WebSocketProtocol, "_bridge_breaks_closed_cycle", False):
        return
    original = WebSocketProtocol.connectionLost

    def connection_lost(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        finally:
            break_closed_cycle(self)

    connection_lost.upstream = original
    WebSocketProtocol.connectionLost = connection_lost
    WebSocketProtocol._bridge_breaks_closed_cycle = True
    _release_upgrade_requests()


def _release_upgrade_requests() -> None:
    from daphne.http_protocol import WebRequest

    original = WebRequest.process

    def process(self):
        try:
            return original(self)
        finally:
            release_upgrade_request(self)

    process.upstream = original
    WebRequest.process = process


def release_upgrade_request(request) -> None:
    """Take a request whose socket went to a WebSocket off its channel's list."""
    channel = request.channel
    upgraded = request.transport is None  # daphne's sign that it handed it over
    if upgraded and channel is not None and request in channel.requests:
        channel.requests.remove(request)


def upstream_connection_lost():
    """daphne's (autobahn's) own connectionLost, whether installed or not."""
    from daphne.ws_protocol import WebSocketProtocol

    method = WebSocketProtocol.connectionLost
    return getattr(method, "upstream", method)


def upstream_process():
    """daphne's own WebRequest.process, whether installed or not."""
    from daphne.http_protocol import WebRequest

    method = WebRequest.process
    return getattr(method, "upstream", method)


def break_closed_cycle(protocol) -> None:
    """Drop `is_closed`'s reference back to the protocol, once it has fired."""
    closed = protocol.__dict__.get("is_closed")
    if getattr(closed, "called", False) and getattr(closed, "result", None) is protocol:
        closed.result = None
