"""Once a WebSocket is open, keep only what an open connection reads.

Works around daphne 4.2.3 on autobahn 26.11.1. Every idle WebSocket kept,
for its whole life, the objects of its opening handshake and a protocol
`__dict__` of 71 entries (1.5 KB, autobahn/websocket/protocol.py:1246 in
docs/performance.md, "Memory of an idle connection, after"):

- autobahn's `WebSocketServerProtocol.processHandshake` and
  `succeedHandshake` store the raw request, the parsed headers, the query
  parameters, the offered protocols and extensions, the key and the response
  text on the protocol (`HANDSHAKE_ONLY`); nothing on the server side reads
  them after the handshake (the test checks which methods do).
- daphne's `WebSocketProtocol.onConnect` stores the request (`ConnectionRequest`,
  which holds all of the above again), the header list it gave the scope, and
  the deferred that made the application; afterwards daphne reads only
  `request.path`, for its access log.
- About thirty state flags are set to the same fresh value on every
  connection (`closedByMe = False`, `localCloseCode = None`, ...) and stay so
  while the connection is idle.

When daphne's `onOpen` has run (the handshake's last step), `compact()`
rebuilds the protocol's `__dict__` without the handshake's objects, with
`request` reduced to its path, and without any flag that still holds its
fresh value, which `install()` puts on daphne's class instead: a read finds
the same value, and a later write puts the attribute back on the instance as
before. The new dict is sized for what is left (64 slots instead of 128).

tests/test_daphne_idle_protocol.py fails when autobahn or daphne read a
handshake attribute outside the handshake, read more of `request` than its
path, or delete or inspect attributes in a way a class default would change.
"""

from __future__ import annotations

# Stored by autobahn's server handshake and read by nothing after it.
AUTOBAHN_HANDSHAKE_ONLY = frozenset(
    {
        "http_request_data",
        "http_status_line",
        "http_headers",
        "http_request_uri",
        "http_request_path",
        "http_request_params",
        "http_request_host",
        "websocket_protocols",
        "websocket_origin",
        "websocket_extensions",
        "_wskey",
        "http_response_data",
    }
)
# Stored by daphne's onConnect and read only there.
DAPHNE_HANDSHAKE_ONLY = frozenset(
    {"clean_headers", "application_deferred", "_raw_query_string"}
)
HANDSHAKE_ONLY = AUTOBAHN_HANDSHAKE_ONLY | DAPHNE_HANDSHAKE_ONLY

# The value each of these has on a fresh, open connection (autobahn's
# _connectionMade and succeedHandshake, daphne's onConnect).
FRESH_VALUES = {
    "_perMessageCompress": None,
    "trackedTimings": None,
    "send_state": 0,
    "data": b"",
    "triggered": False,
    "wasMaxFramePayloadSizeExceeded": False,
    "wasMaxMessagePayloadSizeExceeded": False,
    "closedByMe": False,
    "failedByMe": False,
    "droppedByMe": False,
    "wasClean": False,
    "wasNotCleanReason": None,
    "wasServerConnectionDropTimeout": False,
    "wasOpenHandshakeTimeout": False,
    "wasCloseHandshakeTimeout": False,
    "wasServingFlashSocketPolicyFile": False,
    "localCloseCode": None,
    "localCloseReason": None,
    "remoteCloseCode": None,
    "remoteCloseReason": None,
    "openHandshakeTimeoutCall": None,
    "closeHandshakeTimeoutCall": None,
    "autoPingTimeoutCall": None,
    "autoPingPending": None,
    "autoPingPendingCall": None,
    "autoPingPendingSeq": 0,
    "autoPingPendingSent": None,
    "websocket_protocol_in_use": None,
    "inside_message": False,
    "current_frame": None,
    "protocol_to_accept": None,
    "root_path": "",
}


class OpenedRequest:
    """What daphne reads of the handshake request once the socket is open."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"OpenedRequest(path={self.path!r})"


def compact(protocol) -> None:
    """Rebuild `protocol.__dict__` with only what an open connection reads."""
    kept = {}
    for name, value in protocol.__dict__.items():
        if name in HANDSHAKE_ONLY or _is_fresh(name, value):
            continue
        kept[name] = value
    request = kept.get("request")
    if request is not None and not isinstance(request, OpenedRequest):
        kept["request"] = OpenedRequest(request.path)
    # Inserting one by one sizes the table for what is kept; dict(d) would
    # copy the old table's size.
    protocol.__dict__ = kept


def _is_fresh(name: str, value) -> bool:
    fresh = FRESH_VALUES.get(name, _MISSING)
    return type(value) is type(fresh) and value == fresh


_MISSING = object()


def install() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another ASGI server: nothing to adapt
        return
    if getattr(WebSocketProtocol, "_bridge_idle_protocol", False):
        return
    for name, value in FRESH_VALUES.items():
        if name not in WebSocketProtocol.__dict__:
            setattr(WebSocketProtocol, name, value)
    on_open = WebSocketProtocol.onOpen

    def on_open_then_compact(self):
        on_open(self)
        compact(self)

    on_open_then_compact.upstream = on_open
    WebSocketProtocol.onOpen = on_open_then_compact
    WebSocketProtocol._bridge_idle_protocol = True
