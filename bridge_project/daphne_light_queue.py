"""A lighter input queue for each daphne connection.

Works around daphne 4.2.3: `Server.create_application` gives every connection
(each HTTP request and each WebSocket) an `asyncio.Queue` as its ASGI
`receive`. An empty asyncio.Queue holds three deques and an Event with a
fourth, each with its 64-slot block: 3.0 KB that an idle WebSocket keeps for
its whole life, the largest single item in the memory of an idle connection
after autobahn's own (docs/performance.md, "Memory of an idle connection").

daphne uses only the queue's `put_nowait` (http_protocol.py, ws_protocol.py)
and `get` (the application's `receive`), which is all a `ChannelInbox` has:
the queue the channel layer already uses per consumer, which holds a deque
only while messages wait and a future only while the application does.

`create_application` below is daphne's, line for line, with the queue
swapped. tests/test_daphne_light_queue.py fails when daphne's changes (then
re-read it and copy it again, or drop this module if daphne's queue got
lighter).
"""

from __future__ import annotations

import asyncio
from functools import partial

from bridge_project.channel_layer import ChannelInbox


def create_application(self, protocol, scope):
    """daphne.server.Server.create_application with a ChannelInbox."""
    assert "application_instance" not in self.connections[protocol]
    input_queue = ChannelInbox()
    scope.setdefault("asgi", {"version": "3.0"})
    application_instance = self.application(
        scope=scope,
        receive=input_queue.get,
        send=partial(self.handle_reply, protocol),
    )
    if protocol not in self.connections:
        return None
    self.connections[protocol]["application_instance"] = asyncio.ensure_future(
        application_instance,
        loop=asyncio.get_event_loop(),
    )
    return input_queue


def install() -> None:
    """Before anything that wraps `create_application` (daphne_send_window)."""
    try:
        from daphne.server import Server
    except ImportError:  # another ASGI server: nothing to adapt
        return
    if getattr(Server, "_bridge_light_queue", False):
        return
    if Server.create_application.__module__ != "daphne.server":
        raise RuntimeError(
            "daphne_light_queue must be installed before other patches of "
            "Server.create_application"
        )
    create_application.upstream = Server.create_application
    Server.create_application = create_application
    Server._bridge_light_queue = True
