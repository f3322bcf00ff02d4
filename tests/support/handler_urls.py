"""A URLconf for tests/test_asgi_handler.py: views that say which thread ran them."""

from __future__ import annotations

import threading

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

release_held = threading.Event()
# Set once a held view has started: its thread is taken.
held_started = threading.Event()


def thread_id(request) -> HttpResponse:
    return HttpResponse(str(threading.get_ident()))


def held_thread_id(request) -> HttpResponse:
    """Blocks its thread until the test releases it (as a stuck Redis call would)."""
    held_started.set()
    release_held.wait(timeout=10)
    return HttpResponse(str(threading.get_ident()))


@csrf_exempt
def body_length(request) -> HttpResponse:
    """What Django made of the body: its length and the CONTENT_LENGTH it saw."""
    return HttpResponse(f"{len(request.body)} {request.META.get('CONTENT_LENGTH')}")


urlpatterns = [
    path("thread", thread_id),
    path("held", held_thread_id),
    path("body", body_length),
]
