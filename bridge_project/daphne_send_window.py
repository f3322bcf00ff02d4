"""How much a WebSocket has not yet written to its socket, for the application.

Works around daphne 4.2.3 (with autobahn 26.x and Twisted 26.x):

- **No back-pressure.** daphne writes every ASGI `websocket.send` straight into
  the Twisted transport (`Server.handle_reply` -> `WebSocketProtocol.handle_reply`
  -> autobahn `sendMessage` -> `transport.write`), whose buffer has no limit, and
  ASGI gives the application no way to see it grow: a client that never reads
  made a process hold everything pushed to it (3,000 pushes of 60 KB: RSS
  106 -> 317 MB). Twisted's public remedy is a streaming producer
  (`registerProducer(producer, streaming=True)`): the transport calls
  `pauseProducing()` when a write leaves more than `transport.bufferSize` bytes
  buffered and `resumeProducing()` once it has written everything. A
  `SendWindow` is that producer, and reaches the application as
  `scope["extensions"]["bridge.send_window"]`.
- **A stale producer.** twisted.web's `HTTPChannel` registers itself as the
  transport's producer when the upgrade request arrives, and daphne hands the
  transport to the WebSocket protocol without unregistering it, so it has to be
  unregistered before a `SendWindow` can be registered.
- **Sends to a closing socket raise.** daphne drops a send only once the TCP
  connection is gone; between the close frame and that, autobahn's
  `sendMessage` raises `Disconnected("Attempt to send on a closed protocol")`
  into the application (a pong answering a ping flood, a push racing a close).
  Sending to a socket that has just closed is normal, so such sends are dropped.

tests/test_daphne_send_window.py fails when these upstream behaviours change.
"""

from __future__ import annotations

import asyncio
import logging

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from bridge_project import daphne_light_queue

logger = logging.getLogger(__name__)

SCOPE_EXTENSION = "bridge.send_window"
# A WebSocket frame's header, at most, on top of its payload (RFC 6455 §5.2;
# the server does not mask).
FRAME_HEADER_BYTES = 10


@implementer(IPushProducer)
class SendWindow:
    """One WebSocket's unsent output, as its Twisted transport reports it.

    `unsent` is an upper bound on the bytes the transport still holds: what was
    written since the transport last reported itself empty, and no more than its
    `bufferSize` while it has not paused us (a write that leaves more than that
    buffered pauses us at once). It counts Twisted's buffer, not the kernel's
    socket buffers, which are bounded by the kernel.
    """

    __slots__ = ("_drained", "closed", "paused", "unsent", "watermark")

    def __init__(self, watermark: int) -> None:
        self.watermark = watermark
        self.unsent = 0
        self.paused = False
        self.closed = False
        self._drained: asyncio.Future | None = None

    # --- IPushProducer (Twisted's names), called by the transport ---------------

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.unsent = 0
        self._wake()

    def stopProducing(self) -> None:
        """The connection is gone: nothing will be written any more."""
        self.closed = True
        self.paused = False
        self.unsent = 0
        self._wake()

    # --- for the application ----------------------------------------------------

    def wrote(self, nbytes: int) -> None:
        """Count a frame just handed to the transport."""
        self.unsent += nbytes
        if not self.paused:
            self.unsent = min(self.unsent, self.watermark)

    async def drained(self) -> None:
        """Return once the transport has written everything (or closed)."""
        while self.paused and not self.closed:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drained)

    def _wake(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)


def attach(protocol) -> SendWindow | None:
    """Register a SendWindow on a WebSocket protocol's transport, if it has one
    with a buffer size (a plain TCP transport; not a TLS wrapper)."""
    transport = getattr(protocol, "transport", None)
    watermark = getattr(transport, "bufferSize", None)
    if transport is None or not isinstance(watermark, int):
        return None
    window = SendWindow(watermark)
    # The upgrade request's HTTPChannel is still registered (see above).
    transport.unregisterProducer()
    transport.registerProducer(window, True)
    protocol.bridge_send_window = window
    return window


def payload_bytes(text: str) -> int:
    """The UTF-8 size of a text frame, without encoding it when it is ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def install() -> None:
    try:
        from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another ASGI server: nothing to adapt
        return
    if getattr(Server, "_bridge_send_window", False):
        return
    # It replaces the method wrapped here, so it goes first.
    daphne_light_queue.install()
    create_application = Server.create_application
    handle_reply = WebSocketProtocol.handle_reply
    gone = (AutobahnProtocol.STATE_CLOSING, AutobahnProtocol.STATE_CLOSED)

    def create_application_with_window(self, protocol, scope):
        if scope.get("type") == "websocket":
            window = attach(protocol)
            if window is not None:
                scope.setdefault("extensions", {})[SCOPE_EXTENSION] = window
        return create_application(self, protocol, scope)

    def handle_reply_counting_unsent(self, message):
        if message.get("type") != "websocket.send":
            return handle_reply(self, message)
        if self.state in gone:
            logger.debug("send to a closing WebSocket dropped")
            return None
        handle_reply(self, message)
        window = getattr(self, "bridge_send_window", None)
        if window is not None:
            text = message.get("text")
            size = payload_bytes(text) if text else len(message.get("bytes") or b"")
            window.wrote(size + FRAME_HEADER_BYTES)
        return None

    handle_reply_counting_unsent.upstream = handle_reply
    Server.create_application = create_application_with_window
    WebSocketProtocol.handle_reply = handle_reply_counting_unsent
    Server._bridge_send_window = True
