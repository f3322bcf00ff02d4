"""Reads of public accounts, cached briefly for the push hot path."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from django.conf import settings

from accounts.models import PublicAccount

# Other processes see an account change within this many seconds; the process
# that made the change sees it at once (accounts.signals invalidates).
CACHE_SECONDS = 5.0

_lock = threading.Lock()
_cached: tuple[float, dict[str, str]] | None = None


def active_handles() -> dict[str, str]:
    """Lower-cased handle -> canonical handle, for every active public account.

    One query per CACHE_SECONDS per process, however many pushes there are.
    """
    global _cached
    now = time.monotonic()
    cached = _cached
    if cached is not None and cached[0] > now:
        return cached[1]
    handles = PublicAccount.objects.filter(is_active=True).values_list(
        "handle", flat=True
    )
    mapping = {handle.lower(): handle for handle in handles}
    with _lock:
        _cached = (now + CACHE_SECONDS, mapping)
    return mapping


def invalidate_cache() -> None:
    global _cached
    with _lock:
        _cached = None


def resolve_mentions(
    candidates: Iterable[str], *, limit: int | None = None
) -> list[str]:
    """The canonical handles of the active accounts among `candidates`, in order:
    the first `limit` of them (default BRIDGE_MAX_MENTIONS); later ones are
    plain text. Each mention is one more recipient to store and publish to, so
    the cap bounds what one message can fan out to."""
    if limit is None:
        limit = settings.BRIDGE_MAX_MENTIONS
    active = active_handles()
    # A dict, not a list: membership stays O(1) however many candidates come.
    resolved: dict[str, None] = {}
    for candidate in candidates:
        if len(resolved) >= limit:
            break
        handle = active.get(candidate.lower())
        if handle is not None:
            resolved[handle] = None
    return list(resolved)


def canonical_handle(user_id: str) -> str | None:
    """The handle when `user_id` names an active public account in any case, else
    None: for addressing one (`to`), which is case-insensitive like a mention."""
    return active_handles().get(user_id.lower())


def is_public_account(user_id: str) -> bool:
    """Whether `user_id` IS an active public account: its handle exactly.

    User ids are case-sensitive, so `System_Bot` is an ordinary user, not
    `system_bot`, and gets none of a public account's rights."""
    return canonical_handle(user_id) == user_id
