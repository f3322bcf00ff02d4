"""Keep Django's whole middleware stack in one mode per request.

Under ASGI, Django runs every MiddlewareMixin middleware in async mode and hops
to a worker thread and back for each one's process_request/process_response;
with our stack that was about twenty thread hops per request. This sync-only
middleware, placed innermost, makes Django build the stack in sync mode, so a
request crosses into a thread once, runs the middleware and the (sync) DRF view
there, and crosses back once (measured: bench/, docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SyncStackMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)
