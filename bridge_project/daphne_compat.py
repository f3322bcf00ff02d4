"""Let daphne send the protocol close codes SPEC §2 uses (1009, 1011, 1013).

daphne closes a socket with autobahn's `sendClose`, which accepts only 1000 and
3000-4999 from applications and raises on anything else, so a consumer's
`close(code=1013)` turned into an abrupt 1011/1006 instead. RFC 6455 §7.4.1
defines these codes for exactly our uses (message too big, unexpected
condition, try again later), so for them we write the close frame through
autobahn's `sendCloseFrame`, the method `sendClose` itself ends in.
"""

from __future__ import annotations

PROTOCOL_CLOSE_CODES = frozenset({1001, 1008, 1009, 1011, 1013})


def install() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another ASGI server: nothing to adapt
        return
    if getattr(WebSocketProtocol, "_bridge_close_codes", False):
        return
    original = WebSocketProtocol.serverClose

    def server_close(self, code=None):
        if code in PROTOCOL_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code=code)

    WebSocketProtocol.serverClose = server_close
    WebSocketProtocol._bridge_close_codes = True


def websocket_max_message_size(max_frame_bytes: int) -> int:
    """daphne's own ceiling, above BRIDGE_MAX_FRAME_BYTES.

    Bridge enforces BRIDGE_MAX_FRAME_BYTES itself and closes with 1009; daphne
    (autobahn) would instead drop the TCP connection without a close frame. Its
    ceiling still bounds what it buffers (the 2026 unbounded-message CVE)."""
    return max(1024 * 1024, 2 * max_frame_bytes)
