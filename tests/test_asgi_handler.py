"""ThreadReusingASGIHandler: threads are reused, and no request waits for another."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.test import override_settings

from bridge_project.asgi_handler import ThreadReusingASGIHandler
from tests.support import handler_urls

pytestmark = pytest.mark.urls("tests.support.handler_urls")


async def request(
    handler: ThreadReusingASGIHandler,
    path: str,
    *,
    method: str = "GET",
    headers: tuple[tuple[bytes, bytes], ...] = (),
    body_parts: tuple[bytes, ...] = (b"",),
) -> tuple[int, dict[bytes, bytes], str, int]:
    """One request through the handler; returns the status, the response
    headers, the body and how many body messages the handler received."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }
    sent: list[dict] = []
    parts = list(body_parts)
    received = 0

    async def receive() -> dict:
        nonlocal received
        received += 1
        body = parts.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(parts)}

    async def send(message: dict) -> None:
        sent.append(message)

    await handler(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(
        m.get("body", b"") for m in sent if m["type"] == "http.response.body"
    )
    return start["status"], dict(start["headers"]), body.decode(), received


async def get(handler: ThreadReusingASGIHandler, path: str) -> tuple[int, str]:
    status, _, body, _ = await request(handler, path)
    return status, body


async def start_held(handler: ThreadReusingASGIHandler) -> asyncio.Future:
    """A request to /held, returned once its view is running on its thread."""
    handler_urls.release_held.clear()
    handler_urls.held_started.clear()
    held = asyncio.ensure_future(get(handler, "/held"))
    assert await asyncio.to_thread(handler_urls.held_started.wait, 5)
    return held


async def abandon(held: asyncio.Future) -> None:
    """What daphne does application_close_timeout after the client went away."""
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held


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


@override_settings(BRIDGE_REQUEST_THREADS=1, BRIDGE_MAX_REQUESTS_IN_FLIGHT=4)
async def test_a_request_whose_client_went_away_does_not_hold_up_the_next():
    handler = ThreadReusingASGIHandler()
    held = await start_held(handler)
    try:
        await abandon(held)  # its view is still running on its thread
        status, _ = await asyncio.wait_for(get(handler, "/thread"), 5)
        assert status == 200
    finally:
        handler_urls.release_held.set()


@override_settings(BRIDGE_REQUEST_THREADS=4, BRIDGE_MAX_REQUESTS_IN_FLIGHT=1)
async def test_requests_beyond_the_cap_get_503_in_the_error_shape():
    handler = ThreadReusingASGIHandler()
    held = await start_held(handler)
    try:
        status, headers, body, received = await request(handler, "/thread")
    finally:
        handler_urls.release_held.set()
    await held
    assert status == 503
    assert headers[b"Content-Type"] == b"application/json"
    assert headers[b"Retry-After"] == b"1"
    assert json.loads(body) == {
        "error": "unavailable",
        "message": "Too many requests in flight in this process; retry later.",
        "detail": {"max_in_flight": 1},
    }
    assert received == 0  # refused without reading the body
    assert (await get(handler, "/thread"))[0] == 200  # a slot is free again


@override_settings(BRIDGE_REQUEST_THREADS=4, BRIDGE_MAX_REQUESTS_IN_FLIGHT=1)
async def test_an_abandoned_request_counts_until_its_thread_is_free():
    handler = ThreadReusingASGIHandler()
    held = await start_held(handler)
    try:
        await abandon(held)
        # Its thread (and database connection) is still busy: still in flight.
        assert (await get(handler, "/thread"))[0] == 503
    finally:
        handler_urls.release_held.set()
    await wait_until(lambda: handler._busy == 0)
    assert (await get(handler, "/thread"))[0] == 200


async def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


@override_settings(BRIDGE_MAX_BODY_BYTES=1024)
async def test_a_declared_length_over_the_limit_is_413_before_reading():
    handler = ThreadReusingASGIHandler()
    status, headers, body, received = await request(
        handler,
        "/body",
        method="POST",
        headers=((b"content-length", b"1025"),),
        body_parts=(b"x" * 1025,),
    )
    assert status == 413
    assert headers[b"Content-Type"] == b"application/json"
    assert json.loads(body) == {
        "error": "too_large",
        "message": "The body is over 1024 bytes.",
        "detail": {"max_bytes": 1024},
    }
    assert received == 0


@override_settings(BRIDGE_MAX_BODY_BYTES=1024)
async def test_a_chunked_body_is_refused_at_the_first_chunk_over_the_limit():
    handler = ThreadReusingASGIHandler()
    status, _, body, received = await request(
        handler, "/body", method="POST", body_parts=(b"x" * 600,) * 10
    )
    assert status == 413
    assert json.loads(body)["error"] == "too_large"
    assert received == 2  # the rest was never asked for


@override_settings(BRIDGE_MAX_BODY_BYTES=1024)
async def test_a_chunked_body_within_the_limit_gets_its_length():
    handler = ThreadReusingASGIHandler()
    status, _, body, _ = await request(
        handler, "/body", method="POST", body_parts=(b"x" * 500, b"y" * 524)
    )
    assert (status, body) == (200, "1024 1024")
