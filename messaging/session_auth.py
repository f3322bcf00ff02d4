"""Channels' cookie, session and auth middleware for WebSocket, in one layer.

channels.auth.AuthMiddlewareStack is three middlewares, each of which copies the
scope and stays on the call stack for as long as the socket is open: per
connection three more scope dicts, three coroutine frames and a session wrapper
around `send` (about 2.5 KB per idle connection). That wrapper saves the session
only on `http.response.start`, which a WebSocket never sends, so here one
middleware puts `cookies`, `session` and `user` into one copy of the scope, as
the stack would, and passes `send` through.

channels' AuthMiddleware also looks the user up through database_sync_to_async
on every handshake, cookie or not. Bots and services send no session cookie, so
for them the user is anonymous at once (SPEC §4: a same-site browser's session
is still accepted as its user).
"""

from __future__ import annotations

from importlib import import_module

from channels.auth import UserLazyObject, get_user
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie
from django.utils.functional import LazyObject


class SessionAuthMiddleware:
    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("SessionAuthMiddleware serves WebSocket scopes only")
        cookies = _cookies(scope)
        session_store = import_module(settings.SESSION_ENGINE).SessionStore
        session = LazyObject()
        session._wrapped = session_store(cookies.get(settings.SESSION_COOKIE_NAME))
        user = UserLazyObject()
        scope = dict(scope, cookies=cookies, session=session, user=user)
        if session.session_key is None:
            user._wrapped = AnonymousUser()
        else:
            user._wrapped = await get_user(scope)
        return await self.inner(scope, receive, send)


def _cookies(scope) -> dict[str, str]:
    """scope["cookies"] as channels' CookieMiddleware makes it."""
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1"))
    return {}


def session_auth_stack(inner):
    return SessionAuthMiddleware(inner)
