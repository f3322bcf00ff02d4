"""Channels' session authentication, without a thread hop when there is no session.

channels.auth.AuthMiddleware looks the user up through database_sync_to_async on
every handshake, cookie or not. Bots and services send no session cookie, so
for them the user is anonymous at once (SPEC §4: a same-site browser's session
is still accepted as its user).
"""

from __future__ import annotations

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.contrib.auth.models import AnonymousUser


class SessionAuthMiddleware(AuthMiddleware):
    async def resolve_scope(self, scope) -> None:
        if scope["session"].session_key is None:
            scope["user"]._wrapped = AnonymousUser()
        else:
            await super().resolve_scope(scope)


def session_auth_stack(inner):
    return CookieMiddleware(SessionMiddleware(SessionAuthMiddleware(inner)))
