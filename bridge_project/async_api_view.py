"""DRF's APIView, dispatched on the event loop.

DRF 3.x has no async views, and `adrf` (the usual add-on) runs a request's
authentication, permissions and throttles in a thread (`sync_to_async(
self.initial)`), with async authenticators and throttles hopping back to a loop
from there: two thread crossings per request, which is what the push views
must not pay (docs/performance.md). Here `initial` runs on the loop:

- an authenticator with `async def aauthenticate(request)` is awaited; one
  without it runs its `authenticate` on the database thread (sessions: a
  query);
- permissions are DRF's sync checks (they read `request.user`, no I/O);
- a throttle with `async def aallow_request(request, view)` is awaited; one
  without it runs on a thread.

The database thread is bridge_project/view_db.py's.

Everything else (content negotiation, parsing, exception handling, rendering)
is DRF's own code, which does no I/O: the body is already in memory.
"""

from __future__ import annotations

import inspect

from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from bridge_project.view_db import on_view_db_thread


class AsyncAPIView(APIView):
    """Subclasses define `async def post(...)` (and so on)."""

    async def dispatch(self, request, *args, **kwargs):
        # DRF's APIView.dispatch, with `initial` and the handler awaited.
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            await self.initial_async(request, *args, **kwargs)
            if request.method.lower() in self.http_method_names:
                handler = getattr(
                    self, request.method.lower(), self.http_method_not_allowed
                )
            else:
                handler = self.http_method_not_allowed
            response = handler(request, *args, **kwargs)
            if inspect.isawaitable(response):
                response = await response
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response

    async def initial_async(self, request: Request, *args, **kwargs) -> None:
        """APIView.initial, with authentication and throttles awaited."""
        self.format_kwarg = self.get_format_suffix(**kwargs)
        neg = self.perform_content_negotiation(request)
        request.accepted_renderer, request.accepted_media_type = neg
        version, scheme = self.determine_version(request, *args, **kwargs)
        request.version, request.versioning_scheme = version, scheme
        await authenticate(request)
        self.check_permissions(request)
        await self.check_throttles_async(request)

    async def check_throttles_async(self, request: Request) -> None:
        durations = []
        for throttle in self.get_throttles():
            check = getattr(throttle, "aallow_request", None)
            if check is not None:
                allowed = await check(request, self)
            else:
                allowed = await on_view_db_thread(throttle.allow_request, request, self)
            if not allowed:
                durations.append(throttle.wait())
        if durations:
            known = [duration for duration in durations if duration is not None]
            self.throttled(request, max(known, default=None))


async def authenticate(request: Request) -> None:
    """DRF's Request._authenticate, awaiting each authenticator."""
    for authenticator in request.authenticators:
        try:
            check = getattr(authenticator, "aauthenticate", None)
            if check is not None:
                user_auth = await check(request)
            else:
                user_auth = await on_view_db_thread(authenticator.authenticate, request)
        except exceptions.APIException:
            request._not_authenticated()
            raise
        if user_auth is not None:
            request._authenticator = authenticator
            request.user, request.auth = user_auth
            return
    request._not_authenticated()
