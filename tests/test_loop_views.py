"""Async views (the push API) are answered on the event loop, with the
middleware's hooks applied there (bridge_project/loop_views.py)."""

from __future__ import annotations

import json
import threading

import pytest
from django.conf import settings
from django.test import override_settings

from bridge_project.asgi_handler import ThreadReusingASGIHandler
from bridge_project.loop_views import LOOP_SAFE_MIDDLEWARE, SKIPPED_MIDDLEWARE
from tests.test_asgi_handler import request

pytestmark = pytest.mark.urls("tests.support.handler_urls")

JSON = ((b"content-type", b"application/json"),)


def request_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("django-req")]


async def test_an_async_view_runs_on_the_event_loop_thread_and_takes_no_thread():
    handler = ThreadReusingASGIHandler()
    before = request_threads()
    for _ in range(5):
        status, _, body, _ = await request(handler, "/loop")
        assert status == 200
        assert body == str(threading.get_ident())
    assert request_threads() == before
    assert handler._busy == 0


async def test_a_sync_view_still_runs_on_a_request_thread():
    handler = ThreadReusingASGIHandler()
    status, _, body, _ = await request(handler, "/thread")
    assert status == 200
    assert body != str(threading.get_ident())


async def test_the_middleware_headers_are_on_a_loop_response():
    handler = ThreadReusingASGIHandler()
    status, headers, _, _ = await request(handler, "/loop")
    assert status == 200
    assert headers[b"X-Frame-Options"] == b"DENY"
    assert headers[b"X-Content-Type-Options"] == b"nosniff"


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_REDIRECT_EXEMPT=[])
async def test_the_https_redirect_applies_to_a_loop_view():
    handler = ThreadReusingASGIHandler()
    status, headers, _, _ = await request(handler, "/loop")
    assert status == 301
    assert headers[b"Location"] == b"https://localhost/loop"


async def test_a_bug_in_an_async_view_is_a_json_500_not_a_crash():
    handler = ThreadReusingASGIHandler()
    status, _, body, _ = await request(handler, "/loop-failure")
    assert status == 500
    assert json.loads(body)["error"] == "error"
    assert handler._busy == 0


async def test_a_drf_view_on_the_loop_parses_and_renders_json():
    handler = ThreadReusingASGIHandler()
    status, _, body, _ = await request(
        handler, "/loop-body", method="POST", headers=JSON, body_parts=(b'{"a": 1}',)
    )
    assert status == 202
    assert json.loads(body) == {"got": {"a": 1}}


async def test_a_chunked_body_reaches_a_drf_view_on_the_loop():
    handler = ThreadReusingASGIHandler()
    status, _, body, _ = await request(
        handler,
        "/loop-body",
        method="POST",
        headers=JSON,
        body_parts=(b'{"a": ', b"[1, 2]}"),
    )
    assert status == 202
    assert json.loads(body) == {"got": {"a": [1, 2]}}


async def test_bad_json_to_a_drf_view_on_the_loop_is_a_400_in_the_error_shape():
    handler = ThreadReusingASGIHandler()
    status, _, body, _ = await request(
        handler, "/loop-body", method="POST", headers=JSON, body_parts=(b"{nope",)
    )
    assert status == 400
    assert json.loads(body)["error"] == "invalid"


def test_every_configured_middleware_is_known_to_be_safe_on_the_loop():
    """Adding a middleware to settings.MIDDLEWARE turns the loop path off
    until someone has checked that its hooks do no I/O for the API views
    and listed it in LOOP_SAFE_MIDDLEWARE (or SKIPPED_MIDDLEWARE)."""
    assert set(settings.MIDDLEWARE) <= LOOP_SAFE_MIDDLEWARE | SKIPPED_MIDDLEWARE
    assert ThreadReusingASGIHandler()._loop_views.enabled


async def test_an_unknown_middleware_turns_the_loop_path_off_and_views_still_work(
    caplog,
):
    middleware = [*settings.MIDDLEWARE, "tests.support.middleware.Tagging"]
    with override_settings(MIDDLEWARE=middleware):
        handler = ThreadReusingASGIHandler()
        status, headers, _, _ = await request(handler, "/loop")
    assert not handler._loop_views.enabled
    assert "tests.support.middleware.Tagging" in caplog.text
    assert status == 200
    assert headers[b"X-Tagged"] == b"yes"


async def test_which_urls_run_on_the_loop_follows_the_urlconf_in_force():
    handler = ThreadReusingASGIHandler()
    loop_thread = str(threading.get_ident())
    assert (await request(handler, "/loop"))[2] == loop_thread
    with override_settings(ROOT_URLCONF="tests.support.handler_urls_swapped"):
        status, _, body, _ = await request(handler, "/loop")
    assert status == 200
    assert body != loop_thread, "a sync view runs on a request thread"
    assert (await request(handler, "/loop"))[2] == loop_thread


async def test_remembering_which_paths_run_on_the_loop_is_bounded():
    from bridge_project.loop_views import SERVED_PATHS_KEPT

    handler = ThreadReusingASGIHandler()
    for number in range(SERVED_PATHS_KEPT + 50):
        assert handler._loop_views.serves(f"/nowhere/{number}") is False
    assert len(handler._loop_views._served) <= SERVED_PATHS_KEPT
    assert handler._loop_views.serves("/loop") is True
