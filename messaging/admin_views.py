"""The "Live connections" admin page: who is online, cluster-wide, and a way
to disconnect them (SPEC §6 operations, for staff)."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.identifiers import is_user_id
from messaging.api import operations
from messaging.streams import publish

PAGE = 100


def live_connections(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _disconnect(request)
    try:
        page = max(0, int(request.GET.get("page", "0")))
    except ValueError:
        page = 0
    try:
        online = _run(operations.online_users_page, offset=page * PAGE, limit=PAGE)
        users = [
            {**user, "details": _run(operations.user_connections, user["user_id"])}
            for user in online["users"]
        ]
        error = None
    except publish.LayerUnavailable:
        online, users, error = {"count": 0}, [], "Redis is unreachable."
    context = {
        **admin.site.each_context(request),
        "title": "Live connections",
        "users": users,
        "count": online["count"],
        "page": page,
        "has_next": (page + 1) * PAGE < online["count"],
        "error": error,
    }
    return TemplateResponse(request, "admin/live_connections.html", context)


def _disconnect(request: HttpRequest) -> HttpResponse:
    user_id = request.POST.get("user_id", "")
    if not is_user_id(user_id):
        messages.error(request, "Not a user id.")
    else:
        try:
            closed = _run(operations.disconnect_user, user_id)
            messages.success(request, f"Closed {closed} connection(s) of {user_id}.")
        except publish.LayerUnavailable:
            messages.error(request, "Redis is unreachable; nothing was closed.")
    return HttpResponseRedirect(reverse("live-connections"))


def _run(function, *args, **kwargs):
    return async_to_sync(operations.with_deadline)(function, *args, **kwargs)
