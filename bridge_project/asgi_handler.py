"""Django's ASGI handler, with fewer thread crossings per request.

The push views are async (bridge_project/async_api_view.py) and are answered
on the event loop with no thread at all (bridge_project/loop_views.py); the
in-flight cap and the body limit below apply to them too.

Bridge's other HTTP views are synchronous (DRF). Django's stock ASGI handler runs
them well but expensively for a push service; two things were measured
(docs/performance.md):

- It makes a new thread per request (`ThreadSensitiveContext()` creates a
  one-thread executor and shuts it down afterwards), and since Django's
  database connections are per thread, a new database connection per request.
  Here each request still gets a thread no other request is using, so one
  request never waits for another (a Redis that stops answering holds only
  the requests waiting on it), but the thread comes from a pool of idle ones
  and goes back afterwards, keeping its database connection.
- It crosses from the event loop into that thread and back four times per
  request: the `request_started` receivers, the middleware stack and view,
  `response.close()` with the `request_finished` receivers, plus one per
  async-mode middleware. Here the middleware stack is built synchronous and
  one crossing does all of it: started signal, middleware, view, and for a
  response that is not streamed, close. Streamed responses (static files)
  are closed after sending, as Django does.

Django's handler also cancels an async view whose client disconnects; views
here are synchronous, and a running thread cannot be cancelled, so that part
is left out. What follows from it:

- A request can end (daphne cancels it application_close_timeout seconds
  after its client went away) while its thread is still running the view. Its
  thread goes back to the idle list only once that work has finished;
  putting it back at once made the next request queue behind it.
- Until then it still counts as in flight: at most BRIDGE_MAX_REQUESTS_IN_FLIGHT
  requests (and so threads, and database connections) per process. Beyond
  that a request is answered 503 `unavailable` from the event loop, without
  taking a thread.

It also bounds the body (BRIDGE_MAX_BODY_BYTES, 413 `too_large`): a declared
Content-Length over the limit is refused before the body is read, a body that
turns out longer is refused at the first chunk over it. Under daphne,
bridge_project/daphne_body_limit.py has already refused such bodies before
daphne buffered them; this check is the same limit for any ASGI server. A
chunked body (no Content-Length) is given the Content-Length of what was read,
because DRF reads a request without one as empty.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

from bridge_project.daphne_body_limit import too_large_body
from bridge_project.loop_views import LoopViews
from messaging.api.exceptions import error_body

# Seconds a client refused for too many requests in flight is asked to wait.
BUSY_RETRY_AFTER = 1


class BodyTooLarge(Exception):
    """The request body is over BRIDGE_MAX_BODY_BYTES."""


class ThreadReusingASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        # Every thread (busy, or idle and kept) holds at most one database
        # connection, so this also caps the process's connections.
        self._max_in_flight = settings.BRIDGE_MAX_REQUESTS_IN_FLIGHT
        # Each idle thread keeps one database connection open (CONN_MAX_AGE
        # closes it after a minute). Beyond this many, threads are made and
        # ended per request, as Django does.
        self._idle_threads = min(settings.BRIDGE_REQUEST_THREADS, self._max_in_flight)
        self._max_body_bytes = settings.BRIDGE_MAX_BODY_BYTES
        self._idle: list[ThreadPoolExecutor] = []
        # Threads taken by a request and not yet idle again, including those
        # still running the view of a request that has already ended.
        self._busy = 0
        # Async views (the push API) are answered on the loop, no thread.
        self._loop_views = LoopViews(self)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP, not {scope['type']}.")
        if self._busy >= self._max_in_flight:
            await self._refuse_busy(send)
            return
        self._busy += 1
        if self._loop_views.serves(_path_info(scope)):
            try:
                await self.handle(scope, receive, send, on_loop=True)
            finally:
                self._busy -= 1
            return
        # Most recently used first: its thread and connection are warm.
        executor = self._idle.pop() if self._idle else self._new_executor()
        finished = False
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
            finished = True
        finally:
            if finished:
                self._release(executor)
            else:
                # Cancelled or failed: the view may still be running there.
                self._release_when_idle(executor)

    def _release(self, executor: ThreadPoolExecutor) -> None:
        self._busy -= 1
        if len(self._idle) < self._idle_threads:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)

    def _release_when_idle(self, executor: ThreadPoolExecutor) -> None:
        """Release once the thread has finished what it is running.

        The executor runs one call at a time, so a no-op submitted now runs
        only after the current work; its completion is reported back to the
        event loop, which alone touches the idle list and the count."""
        loop = asyncio.get_running_loop()

        def report(_future) -> None:
            try:
                loop.call_soon_threadsafe(self._release, executor)
            except RuntimeError:  # the loop has closed: the process is ending
                executor.shutdown(wait=False)

        executor.submit(_nothing).add_done_callback(report)

    async def _refuse_busy(self, send) -> None:
        body = error_body(
            "unavailable",
            "Too many requests in flight in this process; retry later.",
            {"max_in_flight": self._max_in_flight},
        )
        await _send_json(
            send,
            503,
            json.dumps(body).encode(),
            [(b"Retry-After", str(BUSY_RETRY_AFTER).encode())],
        )

    async def handle(self, scope, receive, send, *, on_loop: bool = False) -> None:
        try:
            body_file, size = await self._read_bounded_body(scope, receive)
        except RequestAborted:
            return
        except BodyTooLarge:
            await _send_json(
                send,
                413,
                too_large_body(self._max_body_bytes),
                [(b"Connection", b"close")],
            )
            return
        set_script_prefix(get_script_prefix(scope))
        # A chunked body: DRF reads a request without a length as empty.
        scope = _with_content_length(scope, size)
        try:
            if on_loop:
                response = await self._loop_views.respond(scope, body_file)
                response.close()
            else:
                response = await sync_to_async(self._respond, thread_sensitive=True)(
                    scope, body_file
                )
            await self.send_response(response, send)
            if response.streaming:
                await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    async def _read_bounded_body(
        self, scope, receive
    ) -> tuple[tempfile.SpooledTemporaryFile, int]:
        """Django's read_body, refusing a body over the limit as it arrives."""
        limit = self._max_body_bytes
        if _declared_length(scope) > limit:
            raise BodyTooLarge
        body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - returned open
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
        )
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                body_file.close()
                raise BodyTooLarge
            body_file.write(chunk)
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file, size

    def _respond(self, scope, body_file) -> HttpResponseBase:
        """Everything synchronous about one request, on its thread."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            # Sends request_finished, whose receivers belong on this thread.
            response.close()
        return response

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="django-request")


def _nothing() -> None:
    return None


def _path_info(scope) -> str:
    """The path the URLconf sees (ASGIRequest.path_info)."""
    path = scope["path"]
    root = scope.get("root_path", "")
    return path.removeprefix(root) if root else path


def _with_content_length(scope, size: int):
    """The scope, with a Content-Length header when it had none: Django
    sets CONTENT_LENGTH from it, and DRF reads a body without one as empty."""
    headers = scope.get("headers", ())
    if any(name.lower() == b"content-length" for name, _ in headers):
        return scope
    return {**scope, "headers": [*headers, (b"content-length", str(size).encode())]}


def _declared_length(scope) -> int:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server refuses those; Django will see it too
    return 0


async def _send_json(send, status: int, body: bytes, headers: list) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"Content-Type", b"application/json"),
                (b"Content-Length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def get_asgi_application() -> ThreadReusingASGIHandler:
    """django.core.asgi.get_asgi_application, with this handler."""
    import django

    django.setup(set_prefix=False)
    return ThreadReusingASGIHandler()
