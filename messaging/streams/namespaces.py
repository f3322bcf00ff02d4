"""Topic namespaces: the rules every topic of a namespace follows (SPEC §8).

Rules are read from TopicNamespace rows and kept per process for
CACHE_SECONDS, so that a busy topic does not cost a query per push or
subscribe; an operator's change in the admin takes effect within that time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from messaging.models import TopicNamespace

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class NamespaceRules:
    name: str
    subscribe: str = TopicNamespace.Subscribe.MEMBERS
    client_publish: str = TopicNamespace.ClientPublish.NONE
    history_size: int = 1000
    history_ttl: int = 604_800
    presence: bool = True
    join_leave: bool = False
    receipts: bool = False

    @property
    def live_only(self) -> bool:
        """history_size 0: nothing stored, `seq: null`, no recovery."""
        return self.history_size == 0

    def as_dict(self) -> dict:
        """The settings as SPEC §8 names them (`GET /api/topics/<topic>`)."""
        return {
            "name": self.name,
            "subscribe": self.subscribe,
            "client_publish": self.client_publish,
            "history_size": self.history_size,
            "history_ttl": self.history_ttl,
            "presence": self.presence,
            "join_leave": self.join_leave,
            "receipts": self.receipts,
        }


def rules_from_row(row: TopicNamespace) -> NamespaceRules:
    return NamespaceRules(
        name=row.name,
        subscribe=row.subscribe,
        client_publish=row.client_publish,
        history_size=row.history_size,
        history_ttl=row.history_ttl,
        presence=row.presence,
        join_leave=row.join_leave,
        receipts=row.receipts,
    )


_cache: dict[str, tuple[float, NamespaceRules | None]] = {}
_cache_lock = threading.Lock()


def namespace_rules(name: str) -> NamespaceRules | None:
    """The namespace's rules, None when it does not exist; sync (a query at
    most every CACHE_SECONDS per namespace)."""
    now = time.monotonic()
    cached = _cache.get(name)
    if cached is not None and cached[0] > now:
        return cached[1]
    row = TopicNamespace.objects.filter(name=name).first()
    rules = rules_from_row(row) if row is not None else None
    with _cache_lock:
        _cache[name] = (now + CACHE_SECONDS, rules)
    return rules


NOT_CACHED = object()


def cached_namespace_rules(name: str):
    """namespace_rules from the cache only, never a query (for the event
    loop): the rules, None when the namespace does not exist, or NOT_CACHED."""
    cached = _cache.get(name)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    return NOT_CACHED


def forget_cached_rules() -> None:
    """Drop the cache (a namespace was saved in this process, or a test)."""
    with _cache_lock:
        _cache.clear()
