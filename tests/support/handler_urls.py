"""A URLconf for tests/test_asgi_handler.py: views that say which thread ran them."""

from __future__ import annotations

import threading

from django.http import HttpResponse
from django.urls import path

release_held = threading.Event()


def thread_id(request) -> HttpResponse:
    return HttpResponse(str(threading.get_ident()))


def held_thread_id(request) -> HttpResponse:
    """Blocks its thread until the test releases it (as a stuck Redis call would)."""
    release_held.wait(timeout=10)
    return HttpResponse(str(threading.get_ident()))


urlpatterns = [
    path("thread", thread_id),
    path("held", held_thread_id),
]
