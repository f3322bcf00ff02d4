"""The demo page, `/demo/` (issue 17): a chat a newcomer opens to see Bridge
work. Served in open mode, or with BRIDGE_DEMO=1; 404 otherwise.

`POST /demo/join` makes the visitor a member of the demo rooms; in open mode
the page then connects with `?user_id=`, and with BRIDGE_DEMO=1 in token mode
the reply carries a Bridge token for whatever name the visitor typed: anyone
can be anyone, which is why the demo is off unless asked for.
Rooms are topics of the `demo` namespace, created at start-up.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from accounts import selectors
from accounts.identifiers import is_user_id
from accounts.tokens import token_issue
from messaging.api.exceptions import error_body
from messaging.streams import topics
from messaging.streams.namespace_setup import namespaces_ensure

DEMO_NAMESPACES = {
    "demo": {
        "subscribe": "public",
        "client_publish": "subscribers",
        "join_leave": True,
        "receipts": True,
        "history_size": 200,
    }
}
DEMO_ROOMS = ("demo:lobby", "demo:random", "demo:support")
# The example bot (examples/echo_bot.py, which `make demo` runs), when it is a
# public account; else a default one, which answers only if something runs it.
DEMO_BOTS = ("echo_bot", "ci_bot")


def _enabled() -> None:
    if not settings.BRIDGE_DEMO_ENABLED:
        raise Http404("the demo is off (BRIDGE_DEMO=1 turns it on)")


@require_GET
def demo_page(request: HttpRequest) -> HttpResponse:
    _enabled()
    bot = next(
        (handle for handle in DEMO_BOTS if selectors.is_public_account(handle)),
        DEMO_BOTS[-1],
    )
    config = {
        "authMode": settings.BRIDGE_AUTH_MODE,
        "rooms": list(DEMO_ROOMS),
        "bot": bot,
    }
    return render(request, "demo/index.html", {"config": json.dumps(config)})


@require_POST
def demo_join(request: HttpRequest) -> JsonResponse:
    """Make the visitor a member of the demo rooms (members' reads give the
    room `receipt`s, SPEC §9), and in token mode mint its token."""
    _enabled()
    try:
        user_id = json.loads(request.body or b"{}").get("user_id")
    except (ValueError, AttributeError):
        user_id = None
    if not is_user_id(user_id):
        return JsonResponse(
            error_body("invalid", "Choose a user id: letters, digits, _ . -"),
            status=400,
        )
    # Created at start-up (asgi.py); again here for a database migrated since.
    namespaces_ensure(namespaces=DEMO_NAMESPACES)
    for room in DEMO_ROOMS:
        topics.member_add(topic=room, user_id=user_id)
    if settings.BRIDGE_AUTH_MODE == "open":
        return JsonResponse({"user_id": user_id, "token": None})
    issued = token_issue(user_id=user_id, topics=["demo:*"])
    return JsonResponse(
        {
            "user_id": user_id,
            "token": issued.token,
            "expires_at": issued.expires_at.isoformat(),
        }
    )
