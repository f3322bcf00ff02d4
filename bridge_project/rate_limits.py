"""Rate limits counted cluster-wide in Redis, one fixed window per key.

Every limit of Bridge that must hold across processes counts here: client
`message` frames per user, handshakes per user and per address, HTTP requests
per API key and per address. A hit is one Lua script, INCR and then PEXPIRE
when the key has no expiry yet (it was just created), so the window starts with
its first hit and ends by itself. Both run atomically: concurrent processes
never lose a count and never leave a key without an expiry. (DRF's
SimpleRateThrottle instead reads, unpickles, edits and rewrites a list of
timestamps per request: racy between processes and ~3 ms per request at the
default rate.)

A fixed window admits up to twice the limit across a window boundary; that is
the price of one key and one round trip per hit.

When Redis cannot be reached (its circuit is open, or the call fails), the hit
is counted in this process's memory instead (`LocalWindows`): each process then
admits up to the limit on its own, so a cluster of N processes admits at most
N times the limit, instead of everything or nothing (docs/security.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

from redis.exceptions import NoScriptError, RedisError

from bridge_project import redis_health
from bridge_project.redis_client import get_blocking_redis, get_redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "bridge:limit:"
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A request waits at most this long for Redis before counting locally, so an
# unreachable or frozen Redis does not hold requests (SPEC §6: token minting,
# history reads and stored pushes keep working while Redis is down).
BLOCKING_TIMEOUT_SECONDS = 0.5

# Returns {count in this window, milliseconds until the window ends}.
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
_HIT_SHA = hashlib.sha1(_HIT.encode()).hexdigest()
_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Limit:
    """`count` hits per `period` seconds, counted under the key family `name`."""

    name: str
    count: int
    period: float

    @classmethod
    def from_rate(cls, name: str, rate: str) -> Limit:
        """A DRF-style rate, "100/minute" (bridge_project.env.env_rate checked it)."""
        count, _, period = rate.partition("/")
        return cls(name, int(count), _PERIODS[period[0]])

    def key(self, ident: str) -> str:
        return f"{KEY_PREFIX}{self.name}:{ident}"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    # Seconds until the current window ends and the count starts again.
    retry_after: float

    @property
    def retry_after_ms(self) -> int:
        return max(1, math.ceil(self.retry_after * 1000))


def _decide(limit: Limit, reply: list) -> Decision:
    count, ttl_ms = int(reply[0]), int(reply[1])
    return Decision(count <= limit.count, max(ttl_ms, 0) / 1000)


def _args(limit: Limit) -> list:
    return [max(1, int(limit.period * 1000))]


async def hit(limit: Limit, ident: str) -> Decision:
    """Count one hit of `ident` against `limit`, from the event loop."""
    if redis_health.circuit.is_open:
        return local_windows.hit(limit, ident)
    # Its own round trip, not the loop's shared pipeline: behind that
    # pipeline's one-in-flight queue a hit missed the 0.5 s bound on an
    # overloaded process (S6 at full size: 124 hits counted locally, none
    # this way; docs/performance.md).
    client = get_redis()
    key = limit.key(ident)
    try:
        async with asyncio.timeout(BLOCKING_TIMEOUT_SECONDS):
            try:
                reply = await client.evalsha(_HIT_SHA, 1, key, *_args(limit))
            except NoScriptError:  # a Redis that restarted has no scripts cached
                reply = await client.eval(_HIT, 1, key, *_args(limit))
    except _REDIS_FAILURES as exc:
        logger.warning("rate limit counted locally: Redis %s", type(exc).__name__)
        return local_windows.hit(limit, ident)
    return _decide(limit, reply)


def hit_blocking(limit: Limit, ident: str) -> Decision:
    """Count one hit of `ident` against `limit`, from a request thread."""
    if redis_health.circuit.is_open:
        return local_windows.hit(limit, ident)
    client = get_blocking_redis(timeout=BLOCKING_TIMEOUT_SECONDS)
    key = limit.key(ident)
    try:
        try:
            reply = client.evalsha(_HIT_SHA, 1, key, *_args(limit))
        except NoScriptError:
            reply = client.eval(_HIT, 1, key, *_args(limit))
    except _REDIS_FAILURES as exc:
        logger.warning("rate limit counted locally: Redis %s", type(exc).__name__)
        return local_windows.hit(limit, ident)
    return _decide(limit, reply)


class LocalWindows:
    """Fixed windows in this process's memory: the fallback while Redis is away.

    Thread-safe (request threads and the event loop share it). At most
    `max_keys` windows are kept: expired ones are dropped first, then the
    oldest, so a flood of distinct addresses cannot grow memory without bound."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        # key -> [window end (monotonic seconds), count]
        self._windows: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def hit(self, limit: Limit, ident: str, now: float | None = None) -> Decision:
        now = time.monotonic() if now is None else now
        key = limit.key(ident)
        with self._lock:
            window = self._windows.get(key)
            if window is None or window[0] <= now:
                self._make_room(now)
                window = self._windows[key] = [now + limit.period, 0]
            window[1] += 1
            return Decision(window[1] <= limit.count, window[0] - now)

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()

    def __len__(self) -> int:
        return len(self._windows)

    def _make_room(self, now: float) -> None:
        if len(self._windows) < self.max_keys:
            return
        for key in [k for k, (end, _) in self._windows.items() if end <= now]:
            del self._windows[key]
        while len(self._windows) >= self.max_keys:
            del self._windows[next(iter(self._windows))]


local_windows = LocalWindows()


class ConnectionWindow:
    """One connection's fixed window, for frames too cheap to count in Redis
    (ping, pong, ack): two slots, made on first use."""

    __slots__ = ("count", "ends_at")

    def __init__(self) -> None:
        self.ends_at = 0.0
        self.count = 0

    def hit(self, limit: int, period: float, now: float | None = None) -> Decision:
        now = time.monotonic() if now is None else now
        if self.ends_at <= now:
            self.ends_at = now + period
            self.count = 0
        self.count += 1
        return Decision(self.count <= limit, self.ends_at - now)
