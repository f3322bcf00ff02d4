"""tests.support.handler_urls with /loop served by a sync view: which URLs run
on the event loop must follow the URLconf in force."""

from __future__ import annotations

from django.urls import path

from tests.support.handler_urls import thread_id

urlpatterns = [path("loop", thread_id)]
