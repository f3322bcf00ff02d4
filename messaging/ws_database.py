"""The WebSocket side's database work, on a bounded thread pool of its own.

channels' `database_sync_to_async` runs every call on asgiref's one shared
thread (thread_sensitive=True), the thread Django's own async views use too: a
flood of handshakes with session cookies or API keys to look up would queue in
front of every other handshake's and replay's query of the process. Credential
lookups, the handshake's last seq, replay pages, client-message stores and the
heartbeat's seq reads run here instead, on at most BRIDGE_WS_DB_THREADS threads
(each keeps its own database connection, closed when stale as channels does).
How fast work can arrive is bounded by the handshake limits per address and
per user (bridge_project/rate_limits.py).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from channels.db import DatabaseSyncToAsync
from django.conf import settings

P = ParamSpec("P")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The process's pool, made on first use (settings are read lazily)."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=settings.BRIDGE_WS_DB_THREADS,
                    thread_name_prefix="bridge-ws-db",
                )
    return _executor


def shutdown() -> None:
    """Stop the pool's threads (after their current work); the next run_db()
    starts a new pool. A thread's database connection closes when the thread
    ends and its thread-local connection is collected."""
    global _executor
    with _executor_lock:
        pool, _executor = _executor, None
    if pool is not None:
        pool.shutdown(wait=True)


def run_db(func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
    """`func(*args, **kwargs)` on the WebSocket database pool, awaitable."""
    call = DatabaseSyncToAsync(func, thread_sensitive=False, executor=executor())
    return call(*args, **kwargs)
