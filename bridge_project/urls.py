from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from bridge_project.health import HealthView, MetricsView
from messaging.admin_views import live_connections
from messaging.api.exceptions import json_not_found
from messaging.demo import demo_join, demo_page

urlpatterns = [
    path("", include("messaging.api.urls")),
    path("", include("accounts.urls")),
    path("health", HealthView.as_view(), name="health"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path(
        "api/schema",
        SpectacularAPIView.as_view(
            authentication_classes=[], permission_classes=[AllowAny]
        ),
        name="schema",
    ),
    path(
        "admin/live-connections/",
        admin.site.admin_view(live_connections),
        name="live-connections",
    ),
    path("admin/", admin.site.urls),
    path("demo/", demo_page, name="demo"),
    path("demo/join", csrf_exempt(demo_join), name="demo-join"),
    # Last: every other path under /api/ and /sse/ is a JSON 404, also with
    # DEBUG on, where Django would answer its HTML debug page instead of
    # handler404. Exempt from CSRF so a POST gets the 404, not an HTML 403.
    re_path(r"^(?:api|sse)(?:/|$)", csrf_exempt(json_not_found)),
]

handler400 = "messaging.api.exceptions.json_bad_request"
handler403 = "messaging.api.exceptions.json_forbidden"
handler404 = "messaging.api.exceptions.json_not_found"
handler500 = "messaging.api.exceptions.json_server_error"
