"""One WebSocket connection's record, and what every part of `Client` shares:
events for the handler queue, and frames that wait for their answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.exceptions import ConnectionClosed

from bridge_client.dispatch import Dispatcher, Event, Handler
from bridge_client.errors import AckTimeout, ConnectionLost, NotConnected
from bridge_client.positions import Positions

if TYPE_CHECKING:
    from bridge_client.events import Subscription
    from bridge_client.sending import OutgoingStream

TokenProvider = Callable[[], Awaitable[str] | str]


@dataclass(frozen=True)
class Ending:
    """How one connection (or attempt) ended."""

    code: int | None  # the close code; None when no connection was made
    error: dict[str, Any] | None = None  # the `error` frame sent just before
    final: bool = False  # an HTTP refusal of the handshake that will not change


@dataclass
class Connection:
    socket: websockets.ClientConnection
    number: int
    last_error: dict[str, Any] | None = None
    acked: int = 0  # the last `ack` sent on this connection
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


def websocket_url(url: str) -> str:
    """`http://host:8000` or `ws://host:8000` → `ws://host:8000/ws`."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/ws"):
        path += "/ws"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class ClientBase:
    """The state the parts of `Client` share (set in `Client.__init__`), and the
    two things they all do: queue events, and send frames."""

    ack_timeout: float
    refresh_margin: float
    expires_at: str | None
    stats: dict[str, int]
    _token: str | None
    _token_provider: TokenProvider | None
    _handled: Positions
    _queued: Positions
    _dispatcher: Dispatcher
    _handlers: dict[str, list[Handler]]
    _subscriptions: dict[str, Subscription]
    _pending: dict[str, asyncio.Future[dict[str, Any]]]
    _parts: dict[str, OutgoingStream]
    _refs: Iterator[int]
    _connection: Connection | None
    _connected: asyncio.Event
    _refreshing: asyncio.Task[None] | None
    _expiring_for: str | None

    def _emit(self, name: str, payload: Any) -> None:
        """A control event: always queued, in order with the messages."""
        if self._handlers.get(name):
            self._dispatcher.put(Event(name, payload, list(self._handlers[name])))

    def _emit_live(self, name: str, payload: Any, handlers: list[Handler]) -> None:
        """A live-only frame: dropped (and counted) when the queue is full."""
        if not handlers:
            return
        if self._dispatcher.full():
            self.stats["dropped_live"] += 1
            return
        self._dispatcher.put(Event(name, payload, handlers))

    def _resolve(self, frame: dict[str, Any]) -> None:
        future = self._pending.get(str(frame.get("ref")))
        if future is not None and not future.done():
            future.set_result(frame)

    async def _wait_connected(self, timeout: float | None) -> Connection:
        if not self._connected.is_set():
            try:
                await asyncio.wait_for(
                    self._connected.wait(), timeout or self.ack_timeout
                )
            except TimeoutError:
                raise NotConnected("not connected") from None
        assert self._connection is not None
        return self._connection

    async def send_frame(
        self, frame: dict[str, Any], timeout: float | None = None
    ) -> None:
        """Send a frame as is, once connected (within `timeout`)."""
        connection = await self._wait_connected(timeout)
        try:
            await connection.socket.send(json.dumps(frame))
        except ConnectionClosed:
            raise ConnectionLost("the connection closed while sending") from None

    async def _request(
        self, frame: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a frame with a fresh `ref`; the answer with that `ref`, or
        FrameRefused for an `error`, AckTimeout, ConnectionLost."""
        timeout = timeout or self.ack_timeout
        connection = await self._wait_connected(timeout)
        ref = f"r{next(self._refs)}"
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[ref] = future
        try:
            try:
                await connection.socket.send(json.dumps({**frame, "ref": ref}))
            except ConnectionClosed:
                raise ConnectionLost("the connection closed while sending") from None
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            kind = frame.get("type")
            raise AckTimeout(f"no answer to {kind} in {timeout} s") from None
        finally:
            self._pending.pop(ref, None)
