"""Knowing, without asking on every push, whether Redis is reachable.

Each process keeps one idle connection to Redis subscribed to a channel nobody
publishes to: Redis going away closes it at once, which opens the circuit.
Pushes then answer 503 at once, before storing anything, so a 503 always means
"not accepted" (SPEC §6), at no cost per push while Redis is up. A publish that
fails (a partition or a frozen server closes nothing) opens it too. The watch
reconnecting, or any publish succeeding, closes it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from urllib.parse import unquote, urlsplit

from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

WATCH_CHANNEL = "bridge:watch"
RECONNECT_SECONDS = 0.5
CONNECT_SECONDS = 2.0
PROBE_SECONDS = 1.0


class LayerCircuit:
    def __init__(self) -> None:
        self.failed_at: float | None = None
        self.succeeded_at = 0.0
        self.probed_at = 0.0

    @property
    def is_open(self) -> bool:
        return self.failed_at is not None

    def trip(self, started_at: float | None = None) -> None:
        """A Redis operation begun at `started_at` failed. It does not count if
        another succeeded since it began: it outlived an outage already over."""
        if started_at is not None and self.succeeded_at >= started_at:
            return
        if self.failed_at is None:
            logger.warning("Redis unreachable: pushes answer 503 until it is back")
            self.failed_at = time.monotonic()

    def probe_due(self) -> bool:
        """While open, True at most once per PROBE_SECONDS: that caller tries Redis
        for real, so recovery never depends on the watch alone."""
        now = time.monotonic()
        if self.failed_at is None or now - self.probed_at < PROBE_SECONDS:
            return False
        self.probed_at = now
        return True

    def close(self) -> None:
        self.succeeded_at = time.monotonic()
        if self.failed_at is not None:
            logger.warning("Redis reachable again")
        self.failed_at = None


circuit = LayerCircuit()
_watchers: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
# Loops whose watch has finished its first connection attempt.
_settled: set[asyncio.AbstractEventLoop] = set()


def is_watched() -> bool:
    """Whether a live watch has already seen Redis once (so the circuit is its
    word, not a stale one). Sync callers that run each call in a fresh loop
    (tests, management commands) have none and must ask Redis."""
    return any(
        not task.done() and not loop.is_closed() and loop in _settled
        for loop, task in _watchers.items()
    )


def ensure_watching() -> None:
    """Start this loop's watch task if it is not running (idempotent, cheap).

    Only on the main thread's loop (daphne's, or a test's): a loop on another
    thread is asgiref's throwaway loop for one sync call, which a watch would
    only outlive."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    task = _watchers.get(loop)
    if task is None or task.done():
        for stale in [other for other in _watchers if other.is_closed()]:
            del _watchers[stale]
            _settled.discard(stale)
        _watchers[loop] = loop.create_task(_watch())


async def _watch() -> None:
    """Hold a subscribed connection; it returns only when Redis closes it.

    A plain asyncio stream, not a redis-py connection: under daphne a redis-py
    connect here was seen to hang with Redis up, and nothing more than
    SUBSCRIBE and end-of-stream is needed."""
    while True:
        subscribed = False
        writer = None
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                reader, writer = await open_subscription(
                    settings.REDIS_URL, WATCH_CHANNEL
                )
            subscribed = True
            circuit.close()
            _settled.add(asyncio.get_running_loop())
            while await reader.read(1024):
                pass  # nobody publishes here; an empty read is Redis gone
            raise ConnectionError("Redis closed the connection")
        except (RedisError, OSError, asyncio.IncompleteReadError):
            unless_cancelled()
            # Only losing an established subscription is news; failed publishes
            # open the circuit when the watch cannot connect at all.
            if subscribed:
                circuit.trip()
            _settled.add(asyncio.get_running_loop())
        finally:
            if writer is not None:
                writer.close()
        await asyncio.sleep(RECONNECT_SECONDS)


async def open_subscription(
    url: str, channel: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain asyncio connection to Redis at `url`, authenticated and
    subscribed to `channel` (the subscription confirmed). The caller bounds
    the time it may take and closes the writer."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(
        parts.hostname or "127.0.0.1",
        parts.port or 6379,
        ssl=parts.scheme == "rediss" or None,
    )
    try:
        if parts.password:
            writer.write(resp_command("AUTH", *_credentials(parts)))
            if not (await reader.readline()).startswith(b"+"):
                raise ConnectionError("Redis refused the credentials")
        writer.write(resp_command("SUBSCRIBE", channel))
        await reader.readuntil(channel.encode() + b"\r\n:1\r\n")
    except BaseException:
        writer.close()
        raise
    return reader, writer


def _credentials(url) -> list[str]:
    return (
        [unquote(url.username), unquote(url.password)]
        if url.username
        else [unquote(url.password)]
    )


def resp_command(*parts: str) -> bytes:
    """A Redis command in RESP, as a client sends it."""
    encoded = [part.encode() for part in parts]
    lines = [b"*%d" % len(encoded)]
    for part in encoded:
        lines += [b"$%d" % len(part), part]
    return b"\r\n".join(lines) + b"\r\n"


def unless_cancelled() -> None:
    """redis-py may swallow a cancellation or turn it into a connection error;
    a task whose loop is shutting down must stop, not report an outage and
    carry on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
