"""DRF denies by default: every API view declares the permission it needs."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from accounts.authentication import DenyAll


def api_views(patterns=None, prefix: str = "") -> dict[str, object]:
    """Every DRF view the URLconf reaches, by route."""
    found: dict[str, object] = {}
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found.update(api_views(pattern.url_patterns, route))
        elif isinstance(pattern, URLPattern):
            view_class = getattr(pattern.callback, "cls", None)
            if view_class is not None and issubclass(view_class, APIView):
                found[route] = pattern.callback
    return found


def declared_permissions(callback) -> list | None:
    if "permission_classes" in callback.initkwargs:
        return callback.initkwargs["permission_classes"]
    for klass in callback.cls.__mro__:
        if klass is APIView:
            return None  # only DRF's default
        if "permission_classes" in vars(klass):
            return vars(klass)["permission_classes"]
    return None


def test_the_default_permission_denies():
    from django.conf import settings

    assert settings.REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"] == [
        "accounts.authentication.DenyAll"
    ]


def test_every_api_view_declares_its_permission():
    views = api_views()
    assert {"sse/push", "api/tokens", "health", "metrics", "api/schema"} <= set(views)
    undeclared = [
        route for route, callback in views.items() if not declared_permissions(callback)
    ]
    assert undeclared == []


def test_only_health_and_the_schema_are_open_to_anyone():
    open_routes = {
        route
        for route, callback in api_views().items()
        if AllowAny in declared_permissions(callback)
    }
    assert open_routes == {"health", "api/schema"}


class Undeclared(APIView):
    authentication_classes = []

    def get(self, request):
        return Response({"reached": True})


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_view_that_declares_nothing_refuses_everyone(method):
    request = getattr(APIRequestFactory(), method)("/undeclared")
    response = Undeclared.as_view()(request)
    assert response.status_code == 403
    assert response.data["error"] == "permission_denied"
    assert DenyAll.message in response.data["message"]
