"""A URLconf for tests/test_asgi_handler.py: views that say which thread ran them."""

from __future__ import annotations

import threading

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from bridge_project.async_api_view import AsyncAPIView

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


async def loop_thread_id(request) -> HttpResponse:
    """An async view: says which thread ran it (the event loop's, or not)."""
    return HttpResponse(str(threading.get_ident()))


async def loop_failure(request) -> HttpResponse:
    raise RuntimeError("a bug in an async view")


class LoopBody(AsyncAPIView):
    """A DRF view on the loop: echoes the parsed JSON body."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = []

    async def post(self, request) -> Response:
        return Response({"got": request.data}, status=202)


urlpatterns = [
    path("loop", loop_thread_id),
    path("loop-failure", loop_failure),
    path("loop-body", LoopBody.as_view()),
    path("thread", thread_id),
    path("held", held_thread_id),
    path("body", body_length),
]
handler500 = "messaging.api.exceptions.json_server_error"
