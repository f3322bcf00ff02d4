"""A raw RFC 6455 client for hostile-input tests: it sends frames no well-behaved
library would (invalid UTF-8 in text frames, reserved opcodes, fragments split
at any byte), and reads the server's frames as they come off the socket.

`websockets` validates what it sends, so it cannot write these frames; this
client builds them by hand (RFC 6455 §5.2), always masked as a client must.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Opcodes, RFC 6455 §5.2.
CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA

RECEIVE_TIMEOUT = 10.0


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0
) -> bytes:
    """One masked client frame."""
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


def fragments(opcode: int, payload: bytes, sizes: list[int]) -> bytes:
    """`payload` as one message split into frames of `sizes` bytes (the rest
    in the last): the first frame carries `opcode`, the others continue it."""
    pieces: list[bytes] = []
    rest = payload
    for size in sizes:
        if not rest:
            break
        pieces.append(rest[:size])
        rest = rest[size:]
    pieces.append(rest)
    return b"".join(
        encode_frame(
            opcode if index == 0 else CONTINUATION,
            piece,
            fin=index == len(pieces) - 1,
        )
        for index, piece in enumerate(pieces)
    )


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes

    def json(self) -> dict[str, Any]:
        assert self.opcode == TEXT, self
        return json.loads(self.payload)

    @property
    def close_code(self) -> int | None:
        if self.opcode != CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]


class ServerClosed(Exception):
    """The server sent a close frame (`code`), or dropped the TCP connection
    (`code` None)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, url: str) -> RawWebSocket:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        writer.write(
            (
                f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not status.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(f"handshake refused: {status[:200]!r}")
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        """Write `data`; a connection the server has already closed is not an
        error here: what the server said before closing is still to be read."""
        with contextlib.suppress(ConnectionError):
            self.writer.write(data)
            await self.writer.drain()

    async def send_frame(self, opcode: int, payload: bytes, **kwargs: Any) -> None:
        await self.send_raw(encode_frame(opcode, payload, **kwargs))

    async def send_text(self, text: str) -> None:
        await self.send_frame(TEXT, text.encode("utf-8"))

    async def receive_frame(self, timeout: float = RECEIVE_TIMEOUT) -> Frame:
        """The next whole server frame (close frames too)."""
        return await asyncio.wait_for(self._read_frame(), timeout)

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        """The next application frame as JSON, answering WebSocket pings;
        raises ServerClosed on a close frame or a dropped connection."""
        while True:
            frame = await self.receive_frame(timeout)
            if frame.opcode == TEXT:
                return frame.json()
            if frame.opcode == PING:
                await self.send_frame(PONG, frame.payload)
            elif frame.opcode == CLOSE:
                raise ServerClosed(frame.close_code)

    async def _read_frame(self) -> Frame:
        try:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            raise ServerClosed(None) from None
        # The server's frames are small and never fragmented; a continuation
        # would show up as its own Frame and fail the caller's opcode checks.
        return Frame(first & 0x0F, payload)

    async def close(self) -> None:
        if self.writer.is_closing():
            return
        await self.send_frame(CLOSE, struct.pack("!H", 1000))
        self.writer.close()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(self.writer.wait_closed(), 5)
