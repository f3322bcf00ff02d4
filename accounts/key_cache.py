"""A per-process cache of verified API keys, for the push hot path.

Profiling `POST /sse/push` showed ~1.3 ms of CPU per request (about 18 %) in
looking the key up (one query) and checking its HMAC. A key verified once is
remembered here for BRIDGE_API_KEY_CACHE_SECONDS (default 10; 0 turns the cache
off), keyed by a SHA-256 of the whole raw key, so a wrong secret with a known
prefix never hits. Only successes are cached; malformed keys are refused before
any lookup and never stored. At most MAX_ENTRIES keys, the oldest evicted first.

Staleness: a revocation, an edit of a key, or a change to its account clears
this process's cache at once (accounts.signals), and every other process's when
the transaction commits (a PUBLISH on CHANNEL, which each server process
listens to: `listen`). A process whose listener lost Redis clears its cache
when it reconnects, since announcements may have been missed. If an
announcement is lost anyway (Redis down while revoking), no entry is ever used
past its TTL, so a change reaches every process within the TTL. A cache hit
does not write last_used_at; a lookup does (keys.LAST_USED_RESOLUTION), so it
lags by at most the TTL more.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from accounts.keys import api_key_authenticate, is_well_formed_api_key
from bridge_project.redis_client import get_blocking_redis

logger = logging.getLogger(__name__)

CHANNEL = "bridge:api-keys:changed"
MAX_ENTRIES = 10_000
PUBLISH_TIMEOUT = 1.0  # a frozen Redis delays a revocation by no more than this
RECONNECT_SECONDS = 1.0
# A listener that heard nothing for this long pings; no answer by the next
# period means a dead connection (a partition, not only a closed socket).
LIVENESS_SECONDS = 15.0

clock = time.monotonic  # tests replace it


@dataclass(frozen=True)
class VerifiedKey:
    """What a caller authenticated by an API key may do, and as whom."""

    key_id: int
    permissions: frozenset[str]
    handle: str | None  # the key's public account, None for a service key


_lock = threading.Lock()
_entries: OrderedDict[bytes, tuple[float, VerifiedKey]] = OrderedDict()
# Bumped by every clear(): a lookup that began before a clear is not stored.
_generation = 0


def authenticate_api_key_blocking(raw: str) -> VerifiedKey | None:
    """The live key `raw` names, or None; from the cache or the database
    (DatabaseError propagates). For threads and sync code."""
    if not is_well_formed_api_key(raw):
        return None
    slot, generation = _slot(raw)
    if slot is not None and (hit := _cached(slot)) is not None:
        return hit
    return _remember(slot, generation, _lookup(raw))


async def authenticate_api_key(raw: str) -> VerifiedKey | None:
    """As authenticate_api_key_blocking, for the event loop: a hit does no I/O
    and no thread hop; a miss queries on the WebSocket database pool."""
    if not is_well_formed_api_key(raw):
        return None
    slot, generation = _slot(raw)
    if slot is not None and (hit := _cached(slot)) is not None:
        return hit
    # Imported here: accounts does not depend on messaging at import time.
    from messaging.ws_database import run_db

    return _remember(slot, generation, await run_db(_lookup, raw))


def _slot(raw: str) -> tuple[bytes | None, int]:
    if settings.BRIDGE_API_KEY_CACHE_SECONDS <= 0:
        return None, _generation
    return hashlib.sha256(raw.encode()).digest(), _generation


def _cached(slot: bytes) -> VerifiedKey | None:
    with _lock:
        entry = _entries.get(slot)
        if entry is None:
            return None
        if entry[0] > clock():
            return entry[1]
        del _entries[slot]
        return None


def _remember(
    slot: bytes | None, generation: int, verified: VerifiedKey | None
) -> VerifiedKey | None:
    if slot is None or verified is None:
        return verified
    expires = clock() + settings.BRIDGE_API_KEY_CACHE_SECONDS
    with _lock:
        if generation == _generation:  # no change announced since the lookup began
            _entries[slot] = (expires, verified)
            _entries.move_to_end(slot)
            while len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)
    return verified


def _lookup(raw: str) -> VerifiedKey | None:
    key = api_key_authenticate(raw)
    if key is None:
        return None
    handle = key.account.handle if key.account_id else None
    return VerifiedKey(key_id=key.pk, permissions=key.permissions, handle=handle)


def size() -> int:
    return len(_entries)


def clear() -> None:
    """Forget every verified key in this process."""
    global _generation
    with _lock:
        _entries.clear()
        _generation += 1


def invalidate(using: str | None = None) -> None:
    """Keys or accounts changed: clear this process's cache now and once the
    transaction commits (a lookup in between could see the old row), then
    tell the other processes."""
    clear()
    transaction.on_commit(_announce, using=using)


def _announce() -> None:
    clear()
    try:
        get_blocking_redis(timeout=PUBLISH_TIMEOUT).publish(CHANNEL, b"changed")
    except (RedisError, OSError) as exc:
        # The change is committed; other processes see it within the TTL.
        logger.warning(
            "API key change not announced to other processes (%s); "
            "their caches expire within BRIDGE_API_KEY_CACHE_SECONDS",
            type(exc).__name__,
        )


_listeners: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def ensure_listening() -> None:
    """Start this loop's listener unless it runs (idempotent, cheap). Only on
    the main thread's loop (daphne's), as messaging's instance_registry does."""
    if threading.current_thread() is not threading.main_thread():
        return
    if settings.BRIDGE_API_KEY_CACHE_SECONDS <= 0:
        return  # nothing is cached, nothing to clear
    loop = asyncio.get_running_loop()
    task = _listeners.get(loop)
    if task is None or task.done():
        for stale in [other for other in _listeners if other.is_closed()]:
            del _listeners[stale]
        _listeners[loop] = loop.create_task(listen(settings.REDIS_URL))


async def listen(url: str) -> None:
    """Clear the cache on every announcement on CHANNEL, until cancelled; and
    on every (re)subscription, since announcements may have been missed."""
    failing = False
    while True:
        # No retries: a reconnect inside redis-py would resubscribe unseen.
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            clear()
            if failing:
                logger.info("listening for API key changes again")
            failing = False
            await _receive(pubsub)
        except (RedisError, OSError, TimeoutError) as exc:
            _unless_cancelled()
            clear()
            if not failing:
                logger.warning(
                    "lost the API key change listener's Redis connection (%s)",
                    type(exc).__name__,
                )
            failing = True
        finally:
            try:
                await pubsub.aclose()
                await client.aclose()
            except (RedisError, OSError):
                pass
        await asyncio.sleep(RECONNECT_SECONDS)


async def _receive(pubsub) -> None:
    pinged = False
    while True:
        message = await pubsub.get_message(timeout=LIVENESS_SECONDS)
        if message is None:
            if pinged:
                raise TimeoutError("no answer to a ping")
            await pubsub.ping()
            pinged = True
            continue
        pinged = False
        if message["type"] == "message":
            clear()


def _unless_cancelled() -> None:
    """redis-py may turn a cancellation into a connection error."""
    if asyncio.current_task().cancelling():
        raise asyncio.CancelledError
