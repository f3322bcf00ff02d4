"""Bridge's Python client: `Client` (real-time, asyncio), `BridgeHTTP` and
`AsyncBridgeHTTP` (the HTTP API), and `python -m bridge_client` (the CLI)."""

from bridge_client.backoff import Backoff
from bridge_client.errors import (
    AckTimeout,
    BridgeError,
    Closed,
    ConnectionLost,
    FrameRefused,
    HTTPError,
    NotConnected,
    StreamClosed,
    StreamConflict,
    StreamInterrupted,
    Throttled,
    TooManyStreams,
    TransportError,
    Unavailable,
)
from bridge_client.http import AsyncBridgeHTTP, BridgeHTTP, RetryPolicy, push_body
from bridge_client.message import PERSONAL, Message, StreamPart
from bridge_client.positions import Positions
from bridge_client.realtime import (
    Client,
    OutgoingStream,
    State,
    StateChange,
    Subscription,
    Truncated,
)

__version__ = "0.1.0"

__all__ = [
    "PERSONAL",
    "AckTimeout",
    "AsyncBridgeHTTP",
    "Backoff",
    "BridgeError",
    "BridgeHTTP",
    "Client",
    "Closed",
    "ConnectionLost",
    "FrameRefused",
    "HTTPError",
    "Message",
    "NotConnected",
    "OutgoingStream",
    "Positions",
    "RetryPolicy",
    "State",
    "StateChange",
    "StreamClosed",
    "StreamConflict",
    "StreamInterrupted",
    "StreamPart",
    "Subscription",
    "Throttled",
    "TooManyStreams",
    "TransportError",
    "Truncated",
    "Unavailable",
    "push_body",
]
