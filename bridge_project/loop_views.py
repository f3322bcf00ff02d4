"""Serving async views (the push API) on the event loop, middleware included.

Django runs an async view under its ASGI handler on the loop, but wraps every
hook of a `MiddlewareMixin` middleware (`process_request`, `process_view`,
`process_response`, ...) in `sync_to_async`: with settings.MIDDLEWARE's ten
middleware that is a dozen thread crossings per request, each dearer than a
push's own work (docs/performance.md). The hooks of the middleware Bridge uses
do no I/O for an API view: they read headers and set attributes and headers.
So here they are called directly on the loop, in Django's order and with
Django's exception handling (each layer's exception becomes a response, as
`convert_exception_to_response` does).

This holds only for middleware known to be safe on the loop, listed in
LOOP_SAFE_MIDDLEWARE with the reason for each. A project that adds another
middleware turns this path off (a warning says which), and its async views
then run the way Django runs them.

The request_started and request_finished signals are sent on the loop too:
their receivers (Django's `close_old_connections`, `reset_queries`) touch the
database connections of the loop's own thread, and the loop's thread has none
(database work runs on threads: streams/loop_commit.py, messaging/ws_database.py).
"""

from __future__ import annotations

import logging
from inspect import iscoroutinefunction

from django.conf import settings
from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.urls import Resolver404, get_resolver
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

# Middleware whose hooks may run on the event loop for an async API view.
LOOP_SAFE_MIDDLEWARE = {
    # Counters and a timer.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # The HTTPS redirect and security headers: settings and headers only.
    "django.middleware.security.SecurityMiddleware",
    # Lazy: a session is read only when a view touches request.session (no
    # API view does; session authentication runs on a thread) and saved only
    # when modified.
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Header and cookie checks (DRF's views are csrf_exempt).
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
}
# Not MiddlewareMixin, and left out of the path: it answers only requests for
# STATIC_URL, where no async view is.
SKIPPED_MIDDLEWARE = {"whitenoise.middleware.WhiteNoiseMiddleware"}
SERVED_PATHS_KEPT = 1024


def _never_called(request):  # pragma: no cover - hooks are called directly
    raise AssertionError("the loop path calls middleware hooks, not the chain")


class LoopViews:
    """Answers requests for async views on the loop; `None` from `serves`
    means the request is not one (Django's handler takes it)."""

    def __init__(self, handler) -> None:
        # The Django handler: create_request, resolve_request, check_response.
        self._handler = handler
        self._middleware = self._load()
        self._served: dict[tuple, bool] = {}

    @property
    def enabled(self) -> bool:
        return self._middleware is not None

    def _load(self) -> list[MiddlewareMixin] | None:
        unknown = [
            path
            for path in settings.MIDDLEWARE
            if path not in LOOP_SAFE_MIDDLEWARE and path not in SKIPPED_MIDDLEWARE
        ]
        if unknown:
            logger.warning(
                "async views run through Django's middleware adapters (a thread "
                "per hook): %s not known to be safe on the event loop "
                "(bridge_project/loop_views.py)",
                ", ".join(unknown),
            )
            return None
        loaded = []
        for path in settings.MIDDLEWARE:
            if path in SKIPPED_MIDDLEWARE:
                continue
            middleware = import_string(path)(_never_called)
            if type(middleware).__call__ is not MiddlewareMixin.__call__:
                raise TypeError(f"{path} is not a plain MiddlewareMixin")
            loaded.append(middleware)
        return loaded

    def serves(self, path_info: str) -> bool:
        """Whether the URL is an async view's (in the default URLconf)."""
        if self._middleware is None:
            return False
        # Remembered per URLconf and path: resolving costs as much again as
        # Django's own resolve of the same request. Bounded, as paths are
        # the client's to choose.
        resolver = get_resolver()
        key = (resolver, path_info)
        served = self._served.get(key)
        if served is None:
            if len(self._served) >= SERVED_PATHS_KEPT:
                self._served.clear()
            try:
                served = iscoroutinefunction(resolver.resolve(path_info).func)
            except Resolver404:
                served = False
            self._served[key] = served
        return served

    async def respond(self, scope, body_file):
        """The response, as Django's handler would make it."""
        signals.request_started.send(sender=self._handler.__class__, scope=scope)
        request, response = self._handler.create_request(scope, body_file)
        if request is None:
            return response
        try:
            response = await self._through(request, 0)
        except Exception as exc:
            response = response_for_exception(request, exc)
        response._handler_class = self._handler.__class__
        return response

    async def _through(self, request, index: int):
        """Middleware `index` onwards, then the view: MiddlewareMixin.__call__
        and convert_exception_to_response, unrolled."""
        if index == len(self._middleware):
            return await self._view(request)
        middleware = self._middleware[index]
        response = None
        if hasattr(middleware, "process_request"):
            response = middleware.process_request(request)
        if response is None:
            try:
                response = await self._through(request, index + 1)
            except Exception as exc:
                response = response_for_exception(request, exc)
        if hasattr(middleware, "process_response"):
            response = middleware.process_response(request, response)
        return response

    async def _view(self, request):
        """BaseHandler._get_response for an async view, hooks inline."""
        callback, args, kwargs = self._handler.resolve_request(request)
        response = None
        for middleware in self._middleware:
            if hasattr(middleware, "process_view"):
                response = middleware.process_view(request, callback, args, kwargs)
                if response:
                    break
        if response is None:
            try:
                response = await callback(request, *args, **kwargs)
            except Exception as exc:
                response = self._exception_response(exc, request)
        self._handler.check_response(response, callback)
        if hasattr(response, "render") and callable(response.render):
            for middleware in reversed(self._middleware):
                if hasattr(middleware, "process_template_response"):
                    response = middleware.process_template_response(request, response)
            response = response.render()
        return response

    def _exception_response(self, exc: Exception, request):
        for middleware in reversed(self._middleware):
            if hasattr(middleware, "process_exception"):
                response = middleware.process_exception(request, exc)
                if response:
                    return response
        raise exc
