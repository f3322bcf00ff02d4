"""The real-time client: one WebSocket, kept open, resumed after every drop.

One task (`_run`) owns the connection: it connects, reads frames, and on a close
decides whether and when to connect again (SPEC §11). Frames for the application
go through a `Dispatcher` queue, so handlers never hold up the socket. Positions
are kept twice: `_queued` (what went on the queue: resume points and duplicate
filter) and `_handled` (what handlers finished: `client.positions`, to save).

`Client` is assembled from parts: `receiving.py` (frames from the server, the
duplicate filter and the handlers' queue), `topics.py` (subscriptions),
`sending.py` (frames to the server, streamed messages), `refresh.py` (token
refresh), all on `connection.py`'s `ClientBase` (shared state, events, frames
with answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bridge_client.backoff import Backoff
from bridge_client.connection import Connection, Ending, TokenProvider, websocket_url
from bridge_client.dispatch import Dispatcher, Handler
from bridge_client.errors import Closed, ConnectionLost, NotConnected
from bridge_client.events import State, StateChange, Subscription, Truncated
from bridge_client.message import PERSONAL
from bridge_client.positions import Positions
from bridge_client.receiving import Receiving
from bridge_client.sending import OutgoingStream, Sending

logger = logging.getLogger(__name__)


class TokenProviderFailed(Exception):
    """The token provider raised; the next attempt asks it again."""


# SPEC §11: fix the request first. 4401 is retried only with a new token.
NEVER_RETRY = frozenset({4400, 4403})
UNAUTHENTICATED = 4401

__all__ = [
    "Client",
    "OutgoingStream",
    "State",
    "StateChange",
    "Subscription",
    "Truncated",
    "websocket_url",
]


class Client(Receiving, Sending):
    """A Bridge WebSocket client for bots and services.

    ```python
    async with Client("http://127.0.0.1:8000", user_id="ci_bot") as bot:
        bot.on("message", handle)
        await bot.wait_closed()
    ```

    Events (`client.on(name, handler)`, or `@client.on(name)`); each handler
    gets one argument and may be a function or a coroutine function:
    `message` (`Message`; topic messages go to the topic's handler when it has
    one), `stream` (`StreamPart`), `signal`, `read`, `receipt`, `recall`,
    `join`, `leave`, `error` (frame dicts), `state` (`StateChange`),
    `history_truncated` (`Truncated`), `subscribed` (`Subscription`, check
    `recovered`), `unsubscribed` (frame dict), `token_expiring` (frame dict,
    only without a token provider).
    """

    def __init__(
        self,
        url: str,
        *,
        user_id: str | None = None,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        positions: Positions | None = None,
        backoff: Backoff | None = None,
        queue_size: int = 1000,
        ack_timeout: float = 10.0,
        open_timeout: float = 10.0,
        dead_margin: float = 10.0,
        refresh_margin: float = 30.0,
        close_drain_timeout: float = 5.0,
    ) -> None:
        self.url = websocket_url(url)
        self.user_id = user_id
        self.state = State.DISCONNECTED
        self.connection_id: str | None = None
        self.expires_at: str | None = None
        self.heartbeat_interval: float | None = None
        self.reconnects = 0
        self.stats: dict[str, int] = defaultdict(int)
        self.backoff = backoff or Backoff()
        self.ack_timeout = ack_timeout
        self.open_timeout = open_timeout
        self.dead_margin = dead_margin
        self.refresh_margin = refresh_margin
        self.close_drain_timeout = close_drain_timeout
        self._token = token
        self._token_provider = token_provider
        self._handled = positions.copy() if positions is not None else Positions()
        self._queued = self._handled.copy()
        self._dispatcher = Dispatcher(queue_size)
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._subscriptions: dict[str, Subscription] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._parts: dict[str, OutgoingStream] = {}
        self._refs = itertools.count(1)
        self._connection: Connection | None = None
        self._connections = itertools.count(1)
        self._connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._dispatch_task: asyncio.Task[None] | None = None
        self._closing = False
        self._overflowing = False
        self._resume_now = False
        self._refreshing: asyncio.Task[None] | None = None
        self._expiring_for: str | None = None
        self.fatal: Closed | None = None

    # --- lifecycle ----------------------------------------------------------------

    async def connect(self, timeout: float | None = None) -> Client:
        """Start the connection task and wait for the first `connected`."""
        if self._runner is None:
            self._dispatch_task = asyncio.create_task(self._dispatcher.run())
            self._runner = asyncio.create_task(self._run())
        waiters = [
            asyncio.ensure_future(self._connected.wait()),
            asyncio.ensure_future(self._stopped.wait()),
        ]
        try:
            await asyncio.wait(
                waiters,
                timeout=timeout or self.open_timeout * 3,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self.fatal is not None:
            raise self.fatal
        if not self._connected.is_set():
            raise NotConnected(f"not connected to {self.url} yet")
        return self

    async def close(self) -> None:
        """Say goodbye (`disconnect`), stop reconnecting, let the handlers finish
        what is queued (up to `close_drain_timeout`)."""
        self._closing = True
        self._wake.set()
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.socket.send(json.dumps({"type": "disconnect"}))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.socket.close(), 2)
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner
        await self._stop_dispatcher()

    async def wait_closed(self) -> None:
        """Until the client stops; raises `Closed` when the server refused it for
        good (4400, 4403, 4401 without a new token)."""
        await self._stopped.wait()
        if self.fatal is not None:
            raise self.fatal

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def positions(self) -> Positions:
        """How far the handlers got, per stream: save it, and pass it back as
        `Client(positions=...)` after a restart to resume there."""
        return self._handled.copy()

    @property
    def connected(self) -> bool:
        return self.state is State.CONNECTED

    # --- events -------------------------------------------------------------------

    def on(
        self, event: str, handler: Handler | None = None
    ) -> Callable[[Handler], Handler] | Handler:
        """Register a handler for `event`; without `handler`, a decorator."""
        if handler is not None:
            self._handlers[event].append(handler)
            return handler

        def register(function: Handler) -> Handler:
            self._handlers[event].append(function)
            return function

        return register

    def _set_state(
        self, state: State, code: int | None = None, error: dict[str, Any] | None = None
    ) -> None:
        if state is self.state:
            return
        self.state = state
        self._emit("state", StateChange(state, code, error))

    # --- the connection task ------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._closing:
                # close() sets it: a wait below then ends at once.
                self._wake.clear()
                self._set_state(State.CONNECTING)
                ending = await self._connect_and_read()
                code, error = ending.code, ending.error
                self._set_state(State.DISCONNECTED, code, error)
                if self._closing:
                    break
                delay = await self._retry_delay(ending)
                if delay is None:
                    self.fatal = Closed(code, error)
                    logger.warning("bridge_client: not reconnecting: %s", self.fatal)
                    break
                self.reconnects += 1
                logger.info(
                    "bridge_client: closed with %s; reconnecting in %.2f s", code, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        except Exception as error:  # a bug here must not leave waiters hanging
            logger.exception("bridge_client: connection task failed")
            self.fatal = Closed(None, {"message": repr(error)})
        finally:
            self._set_state(State.DISCONNECTED)
            self._stopped.set()

    async def _retry_delay(self, ending: Ending) -> float | None:
        """Seconds to wait before connecting again; None: stop (SPEC §11)."""
        if self._resume_now:
            # Our own close after the queue overflowed: resume at once, once.
            self._resume_now = False
            return 0.0
        if ending.final or ending.code in NEVER_RETRY:
            return None
        if ending.code == UNAUTHENTICATED:
            if self._token_provider is None:
                return None
            old = self._token
            try:
                self._token = await self._provide_token()
            except Exception:
                # Ask again before the next attempt (in _open), never reuse
                # the refused token.
                logger.exception("bridge_client: the token provider failed")
                self._token = None
                return self.backoff.next_delay()
            if not self._token or self._token == old:
                return None
        hint = (ending.error or {}).get("retry_after_ms")
        delay = self.backoff.next_delay()
        if isinstance(hint, int | float) and hint >= 0:
            # The server knows when a retry can succeed (going_away spreads a
            # process's clients, rate_limited names the window's end).
            return hint / 1000.0
        return delay

    async def _open(self) -> websockets.ClientConnection:
        query: dict[str, Any] = {}
        if self.user_id:
            query["user_id"] = self.user_id
        if self._queued.personal is not None:
            query["last_seq"] = self._queued.personal
        if self._token is None and self._token_provider is not None:
            try:
                self._token = await self._provide_token()
            except Exception as failed:
                logger.exception("bridge_client: the token provider failed")
                raise TokenProviderFailed() from failed
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        url = f"{self.url}?{urlencode(query)}" if query else self.url
        return await websockets.connect(
            url,
            additional_headers=headers,
            open_timeout=self.open_timeout,
            # Liveness is Bridge's own ping frame (SPEC §2), watched in _read.
            ping_interval=None,
            close_timeout=2,
        )

    async def _connect_and_read(self) -> Ending:
        """One connection, from handshake to close: (close code, error frame)."""
        try:
            socket = await self._open()
        except TokenProviderFailed:
            return Ending(None)  # a token server down: try again with backoff
        except InvalidStatus as refused:
            status = refused.response.status_code
            logger.warning("bridge_client: handshake answered HTTP %s", status)
            # A 4xx (wrong path, a proxy refusing) will not fix itself; 429 may.
            final = 400 <= status < 500 and status != 429
            return Ending(1006, {"message": f"HTTP {status}"}, final=final)
        except (OSError, TimeoutError, InvalidHandshake) as failed:
            logger.info("bridge_client: cannot connect: %r", failed)
            return Ending(None)
        if self._closing:  # close() was called while the handshake ran
            await socket.close()
            return Ending(1000)
        connection = Connection(socket, next(self._connections))
        self._connection = connection
        self._overflowing = False
        try:
            await self._read(connection)
            code = socket.close_code
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
        except TimeoutError:
            # Nothing, not even a ping, for heartbeat_interval + dead_margin.
            self.stats["dead_connections"] += 1
            logger.info("bridge_client: no frame in time; the connection is dead")
            socket.transport.abort()
            code = 1006
        except (OSError, ValueError) as broken:
            logger.info("bridge_client: connection broke: %r", broken)
            socket.transport.abort()
            code = 1006
        finally:
            self._connection = None
            self._connected.clear()
            self.backoff.disconnected()
            self._end_connection(connection)
        return Ending(code, connection.last_error)

    def _end_connection(self, connection: Connection) -> None:
        for task in connection.tasks:
            task.cancel()
        lost = ConnectionLost("the connection ended before the server answered")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(lost)
        self._pending.clear()
        self._parts.clear()
        for subscription in self._subscriptions.values():
            subscription.active = False

    async def _read(self, connection: Connection) -> None:
        socket = connection.socket
        first = json.loads(await asyncio.wait_for(socket.recv(), self.open_timeout))
        if first.get("type") != "connected":
            # A refused handshake: an `error` frame, then the close (SPEC §2).
            connection.last_error = first if first.get("type") == "error" else None
            await asyncio.wait_for(socket.recv(), self.open_timeout)
            return
        self._on_connected(connection, first)
        # Between frames the server pings every heartbeat_interval (SPEC §2).
        limit = (self.heartbeat_interval or 30.0) + self.dead_margin
        while True:
            raw = await asyncio.wait_for(socket.recv(), limit)
            await self._on_frame(connection, json.loads(raw))

    def _on_connected(self, connection: Connection, frame: dict[str, Any]) -> None:
        self.connection_id = frame.get("connection_id")
        self.user_id = frame.get("user_id", self.user_id)
        self.heartbeat_interval = float(frame.get("heartbeat_interval") or 30)
        self.expires_at = frame.get("expires_at")
        self._expiring_for = None
        if self._queued.personal is None:
            # First connection without a resume point: live from here on, and a
            # restart with these positions resumes from here.
            last = int(frame.get("last_seq") or 0)
            self._queued.personal = last
            self._handled.advance(PERSONAL, last)
        self.backoff.connected()
        for subscription in self._subscriptions.values():
            self._send_subscribe(connection, subscription)
        if self.expires_at and frame.get("server_time"):
            connection.tasks.append(
                asyncio.create_task(
                    self._refresh_before(self.expires_at, frame["server_time"])
                )
            )
        self._set_state(State.CONNECTED)
        self._emit("connected", frame)
        self._connected.set()

    async def _stop_dispatcher(self) -> None:
        if self._dispatch_task is None:
            return
        self._dispatcher.stop()
        try:
            await asyncio.wait_for(
                asyncio.shield(self._dispatch_task), self.close_drain_timeout
            )
        except TimeoutError:
            self._dispatch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatch_task
