"""A per-process cache of verified API keys, for the push hot path.

Profiling `POST /sse/push` showed ~1.3 ms of CPU per request (about 18 %) in
looking the key up (one query) and checking its HMAC. A key verified once is
remembered here for BRIDGE_API_KEY_CACHE_SECONDS (default 10; 0 turns the cache
off), keyed by a SHA-256 of the whole raw key, so a wrong secret with a known
prefix never hits. Only successes are cached; malformed keys are refused before
any lookup and never stored. At most MAX_ENTRIES keys, the oldest evicted first.

Staleness: a revocation, an edit of a key, or a change to its account clears
this process's cache at once (accounts.signals), and every other process's when
the transaction commits (accounts/key_changes.py: a Redis PUBLISH each server
process listens for). If an announcement is lost (Redis down while revoking),
no entry is ever used past its TTL, so a change reaches every process within
the TTL. A cache hit does not write last_used_at; a lookup does (at most once a
minute, keys.LAST_USED_RESOLUTION), so it lags by at most the TTL more.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.conf import settings

from accounts.keys import api_key_authenticate, is_well_formed_api_key

MAX_ENTRIES = 10_000

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


async def authenticate_api_key(
    raw: str, *, run: Callable[..., Awaitable] | None = None
) -> VerifiedKey | None:
    """As authenticate_api_key_blocking, for the event loop: a hit does no I/O
    and no thread hop; a miss queries through `run` (default: the WebSocket
    database pool; the HTTP views pass their own database thread)."""
    if not is_well_formed_api_key(raw):
        return None
    slot, generation = _slot(raw)
    if slot is not None and (hit := _cached(slot)) is not None:
        return hit
    if run is None:
        # Imported here: accounts does not depend on messaging at import time.
        from messaging.ws_database import run_db as run
    return _remember(slot, generation, await run(_lookup, raw))


def _slot(raw: str) -> tuple[bytes | None, int]:
    if settings.BRIDGE_API_KEY_CACHE_SECONDS <= 0:
        return None, _generation
    return hashlib.sha256(raw.encode()).digest(), _generation


def _cached(slot: bytes) -> VerifiedKey | None:
    with _lock:
        entry = _entries.get(slot)
        if entry is not None and entry[0] <= clock():
            del _entries[slot]  # expired
            entry = None
    return entry[1] if entry is not None else None


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
    if (key := api_key_authenticate(raw)) is None:
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
