"""Django's ASGI handler, with the request threads kept for the next request.

Django runs each request's sync code (middleware, DRF views, the ORM) on a
thread of its own: `ThreadSensitiveContext()` makes a new one-thread executor
per request and shuts it down afterwards. Every request therefore paid for a
new thread and, because Django's connections are per thread, a new database
connection (for SQLite: open the file, run the init PRAGMAs, register Django's
SQL functions); measured, that was half of a push's CPU (docs/performance.md).

This handler gives each request a thread that no other request is using, as
Django does, but takes it from a pool of idle ones and returns it afterwards,
so the thread and its database connection live on. A request never waits for
another: when no thread is idle a new one is made. (A single shared thread was
measured as fast too, but a Redis that stops answering then queues every
request behind the one that is waiting on it.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler

# Idle threads kept; each keeps one database connection open (CONN_MAX_AGE
# closes it after a minute). More than this many at once are made and ended
# per request, as Django does.
IDLE_THREADS = 16


class ThreadReusingASGIHandler(ASGIHandler):
    def __init__(self, idle_threads: int = IDLE_THREADS) -> None:
        super().__init__()
        self._idle_threads = idle_threads
        self._idle: list[ThreadPoolExecutor] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP, not {scope['type']}.")
        # Most recently used first: its thread and connection are warm.
        executor = self._idle.pop() if self._idle else self._new_executor()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            if len(self._idle) < self._idle_threads:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="django-request")


def get_asgi_application() -> ThreadReusingASGIHandler:
    """django.core.asgi.get_asgi_application, with this handler."""
    import django

    django.setup(set_prefix=False)
    return ThreadReusingASGIHandler()
