"""The database thread of the async API views.

`sync_to_async(thread_sensitive=True)`: under daphne that is asgiref's one
shared thread, which the group commits of the pushes use too
(messaging/streams/loop_commit.py); under a sync caller (Django's test client,
a management command) it is the caller's own thread, so the caller's
transaction is seen, as Django's own async views do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


def on_view_db_thread(
    func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> Awaitable[R]:
    """`func(*args, **kwargs)` on the async views' database thread."""
    return sync_to_async(func, thread_sensitive=True)(*args, **kwargs)
