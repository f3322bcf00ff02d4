"""Give each WebSocket a list-sized send queue instead of an empty deque.

Works around autobahn 26.11.1 (as daphne 4.2.3 uses it): when a connection is
made, `WebSocketProtocol._connectionMade` (autobahn/websocket/protocol.py)
sets `self.send_queue = deque()`. The queue is used only for chopped or
synchronous sends (`sendData(..., sync=True)` or a `chopsize`), which daphne
never asks for, yet an empty deque allocates its first 64-slot block at once:
0.74 KB of every idle connection (docs/performance.md, "Memory of an idle
connection, after").

autobahn uses the queue in three ways only: `len()`, `append()` and
`popleft()`. `SendQueue` is a list that also has `popleft()` (an empty list
is 56 bytes and allocates nothing until the first append), and the name
`deque` in autobahn's protocol module, used for nothing else there, is
rebound to it. `popleft` on a list moves the rest down, which is no cost for
a queue that holds a few chunks at most.

tests/test_autobahn_light_send_queue.py fails when autobahn uses `deque` for
anything else in that module, or the send queue in any other way.
"""

from __future__ import annotations

from collections import deque


class SendQueue(list):
    """The part of `collections.deque` autobahn's send queue uses."""

    __slots__ = ()

    def popleft(self):
        return self.pop(0)


def install() -> None:
    try:
        from autobahn.websocket import protocol
    except ImportError:  # another ASGI server: nothing to adapt
        return
    if protocol.deque is deque:
        protocol.deque = SendQueue
