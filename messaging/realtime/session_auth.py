"""Channels' cookie, session and auth middleware for WebSocket, in one layer.

channels.auth.AuthMiddlewareStack is three middlewares, each of which copies the
scope and stays on the call stack for as long as the socket is open: per
connection three more scope dicts, three coroutine frames and a session wrapper
around `send` (about 2.5 KB per idle connection). That wrapper saves the session
only on `http.response.start`, which a WebSocket never sends, so here one
middleware puts `cookies`, `session` and `user` into one copy of the scope, as
the stack would, and passes `send` through.

channels' AuthMiddleware also looks the user up through database_sync_to_async
on every handshake, cookie or not, before the consumer runs. Here nothing is
queried: without a cookie that could name a session (bots and services send
none; a forged one is refused by its syntax), the user is anonymous at once;
otherwise `scope["user"]` stays unresolved until the handshake, after the
per-address handshake limit, resolves it with `session_user()` on the
WebSocket database pool (messaging/ws_database.py). SPEC §4: a same-site
browser's session is still accepted as its user.
"""

from __future__ import annotations

import re
from importlib import import_module

from channels.auth import UserLazyObject, get_user
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie
from django.utils.functional import LazyObject, SimpleLazyObject, empty

# Django's own engines make every key with get_random_string(32, [a-z0-9])
# (SessionBase._get_new_session_key); anything else names no stored session.
_GENERATED_KEY = re.compile(r"[a-z0-9]{32}")
_GENERATED_KEY_ENGINES = {
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.cached_db",
    "django.contrib.sessions.backends.file",
}


class SessionAuthMiddleware:
    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("SessionAuthMiddleware serves WebSocket scopes only")
        cookies = _cookies(scope)
        key = _plausible_key(cookies)
        if key is None:
            # Most connections (bots, services, token clients): nothing to look
            # up, and nothing per connection kept for it until someone asks.
            session = SimpleLazyObject(_new_session)
            user = ANONYMOUS
        else:
            session = LazyObject()
            session._wrapped = _session_store()(key)
            user = UserLazyObject()
        scope = dict(scope, cookies=cookies, session=session, user=user)
        return await self.inner(scope, receive, send)


# AnonymousUser keeps no state of its own (its setters raise), so one serves
# every connection without a session, as Django's own `AnonymousUser()` per
# request would.
ANONYMOUS = AnonymousUser()


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


def _new_session():
    """An empty session, made the first time a cookieless scope's is read."""
    return _session_store()(None)


def session_user(scope: dict):
    """The session's user (queries the database: call it on a worker thread)."""
    user = scope.get("user")
    if user is None:
        return ANONYMOUS
    if getattr(user, "_wrapped", None) is empty:
        user._wrapped = get_user.func(scope)
    return user


def _plausible_key(cookies: dict[str, str]) -> str | None:
    """The session cookie, if it could name a stored session; else None."""
    key = cookies.get(settings.SESSION_COOKIE_NAME)
    if key is None:
        return None
    if settings.SESSION_ENGINE in _GENERATED_KEY_ENGINES:
        return key if _GENERATED_KEY.fullmatch(key) else None
    return key


def _cookies(scope) -> dict[str, str]:
    """scope["cookies"] as channels' CookieMiddleware makes it."""
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1"))
    return {}


def session_auth_stack(inner):
    return SessionAuthMiddleware(inner)
