"""ThreadReusingASGIHandler: threads are reused, and no request waits for another."""

from __future__ import annotations

import asyncio

import pytest
from django.test import override_settings

from bridge_project.asgi_handler import ThreadReusingASGIHandler
from tests.support import handler_urls

pytestmark = pytest.mark.urls("tests.support.handler_urls")


async def get(handler: ThreadReusingASGIHandler, path: str) -> tuple[int, str]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await handler(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(
        m.get("body", b"") for m in sent if m["type"] == "http.response.body"
    )
    return status, body.decode()


@override_settings(BRIDGE_REQUEST_THREADS=4)
async def test_one_request_after_another_runs_on_the_same_kept_thread():
    handler = ThreadReusingASGIHandler()
    first = await get(handler, "/thread")
    second = await get(handler, "/thread")
    assert first[0] == second[0] == 200
    assert first[1] == second[1]


@override_settings(BRIDGE_REQUEST_THREADS=4)
async def test_a_request_does_not_wait_for_one_whose_thread_is_stuck():
    handler = ThreadReusingASGIHandler()
    handler_urls.release_held.clear()
    held = asyncio.ensure_future(get(handler, "/held"))
    try:
        status, free_thread = await asyncio.wait_for(get(handler, "/thread"), 5)
        assert status == 200
        assert not held.done()
    finally:
        handler_urls.release_held.set()
    held_status, held_thread = await held
    assert held_status == 200
    assert held_thread != free_thread


@override_settings(BRIDGE_REQUEST_THREADS=1)
async def test_threads_beyond_the_idle_limit_end_with_their_request():
    handler = ThreadReusingASGIHandler()
    handler_urls.release_held.clear()
    held = asyncio.ensure_future(get(handler, "/held"))
    await asyncio.sleep(0.1)  # the held request has taken its thread
    _, extra_thread = await get(handler, "/thread")  # a second thread, kept idle
    handler_urls.release_held.set()
    _, held_thread = await held  # its thread is over the limit of one: ended
    _, later = await get(handler, "/thread")
    assert later == extra_thread
    assert later != held_thread
