"""Django's ASGI handler, without a new worker thread for every request.

Django runs each HTTP request in its own ThreadSensitiveContext, so the sync part
of every request (our middleware stack and DRF views) gets a freshly started
thread, and with it a fresh database connection. Measured in-process, that was
half the CPU of a push (6.6 ms -> 3.7 ms without it; docs/performance.md).

Without the context, sync code runs on asgiref's one shared thread-sensitive
thread, exactly where Channels already runs every consumer's database call: one
thread and one database connection per process, and no thread start-up per
request. The cost is that sync work of one process is serialized; Bridge's is
short (a validation and one transaction per push), and capacity comes from
running several processes (docs/deployment.md).
"""

from __future__ import annotations

import django
from django.core.handlers.asgi import ASGIHandler


class SharedThreadASGIHandler(ASGIHandler):
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django serves only HTTP, not {scope['type']}")
        await self.handle(scope, receive, send)


def get_asgi_application() -> SharedThreadASGIHandler:
    django.setup(set_prefix=False)
    return SharedThreadASGIHandler()
