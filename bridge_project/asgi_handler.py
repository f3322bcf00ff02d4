"""Django's ASGI handler, with fewer thread crossings per request.

Bridge's HTTP views are synchronous (DRF). Django's stock ASGI handler runs
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
is left out.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix


class ThreadReusingASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        # Each idle thread keeps one database connection open (CONN_MAX_AGE
        # closes it after a minute). Beyond this many requests in flight,
        # threads are made and ended per request, as Django does.
        self._idle_threads = settings.BRIDGE_REQUEST_THREADS
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

    async def handle(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            response = await sync_to_async(self._respond, thread_sensitive=True)(
                scope, body_file
            )
            await self.send_response(response, send)
            if response.streaming:
                await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

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


def get_asgi_application() -> ThreadReusingASGIHandler:
    """django.core.asgi.get_asgi_application, with this handler."""
    import django

    django.setup(set_prefix=False)
    return ThreadReusingASGIHandler()
