"""Who is calling the HTTP API, and what they may do (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from accounts.credentials import InvalidToken, user_token_claims
from accounts.key_cache import (
    VerifiedKey,
    authenticate_api_key,
    authenticate_api_key_blocking,
)
from accounts.keys import looks_like_api_key
from accounts.models import ApiKey
from bridge_project.api_errors import ServiceUnavailable
from bridge_project.view_db import on_view_db_thread


@dataclass(frozen=True)
class Caller:
    """request.user for API callers: an API key's owner, or anyone in open mode."""

    permissions: frozenset[str]
    # The public account a key belongs to: pushes carry from = this handle.
    handle: str | None = None
    key_id: int | None = None

    is_authenticated = True
    is_staff = False

    def may(self, permission: str) -> bool:
        return permission in self.permissions


OPEN_CALLER = Caller(permissions=frozenset(ApiKey.PERMISSIONS))


@dataclass(frozen=True)
class TokenUser:
    """request.user for a user's WebSocket token on the user endpoints
    (SPEC §9 "History for users"): whose token it is and what it grants."""

    user_id: str
    grants: tuple[str, ...] = ()

    is_authenticated = True
    is_staff = False


class UserTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <websocket token>` (the tokens POST /api/tokens
    mints, or a JWT: SPEC §10), on the views that serve users. A Bearer value
    shaped like an API key is left to ApiKeyAuthentication, so ops keys work
    there as before."""

    def authenticate(self, request: Request):
        header = authentication.get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            return None  # ApiKeyAuthentication refuses it
        if looks_like_api_key(raw):
            return None
        try:
            claims = user_token_claims(raw)
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed(f"Invalid token: {exc}.") from None
        return (TokenUser(claims.user_id, claims.topics), None)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="bridge"'


class OpenModeAuthentication(authentication.BaseAuthentication):
    """BRIDGE_AUTH_MODE=open: every request has every permission."""

    def authenticate(self, request: Request):
        if settings.BRIDGE_AUTH_MODE == "open":
            return (OPEN_CALLER, None)
        return None

    async def aauthenticate(self, request: Request):
        """For views on the event loop (bridge_project/async_api_view.py)."""
        return self.authenticate(request)

    def authenticate_header(self, request: Request) -> str:
        # DRF asks the first class for the challenge; without one a missing key
        # would be a 403 instead of SPEC's 401.
        return 'Bearer realm="bridge"'


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <api key>`, verified through the process's cache
    of keys (accounts/key_cache.py). request.auth is the VerifiedKey."""

    def authenticate(self, request: Request):
        raw = self._raw_key(request)
        if raw is None:
            return None
        try:
            verified = authenticate_api_key_blocking(raw)
        except DatabaseError:
            # SPEC §6: a database outage is a 503, never a 500.
            raise ServiceUnavailable() from None
        return self._result(verified)

    async def aauthenticate(self, request: Request):
        """As authenticate, on the event loop: a cached key costs no I/O."""
        raw = self._raw_key(request)
        if raw is None:
            return None
        try:
            verified = await authenticate_api_key(raw, run=on_view_db_thread)
        except DatabaseError:
            raise ServiceUnavailable() from None
        return self._result(verified)

    @staticmethod
    def _raw_key(request: Request) -> str | None:
        """The Bearer value, None when the request has no Bearer header."""
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <key>'.")
        try:
            return header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None

    @staticmethod
    def _result(verified: VerifiedKey | None) -> tuple[Caller, VerifiedKey]:
        if verified is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        caller = Caller(
            permissions=verified.permissions,
            handle=verified.handle,
            key_id=verified.key_id,
        )
        return (caller, verified)

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing.
        return 'Bearer realm="bridge"'


class SessionAuthentication(authentication.SessionAuthentication):
    """Django's session (staff in the admin); CSRF-checked as usual."""

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="bridge"'


class DenyAll(permissions.BasePermission):
    """DRF's DEFAULT_PERMISSION_CLASSES: a view that declares no permission of
    its own refuses every caller, so no endpoint is public by omission."""

    message = "This endpoint declares no permission; nobody may call it."

    def has_permission(self, request: Request, view) -> bool:
        return False


def requires(*allowed: str) -> type[permissions.BasePermission]:
    """A DRF permission class: the caller holds one of the `allowed`
    permissions; staff sessions count as `ops`."""
    wanted = frozenset(allowed)
    names = "' or '".join(allowed)

    class Requires(permissions.BasePermission):
        message = f"This needs the '{names}' permission."

        def has_permission(self, request: Request, view) -> bool:
            user = request.user
            if isinstance(user, Caller):
                return any(user.may(permission) for permission in wanted)
            return bool(
                "ops" in wanted
                and getattr(user, "is_authenticated", False)
                and getattr(user, "is_staff", False)
            )

    Requires.__name__ = f"Requires_{'_or_'.join(allowed)}"
    return Requires


class IsTokenUser(permissions.BasePermission):
    """The caller authenticated with a user's WebSocket token."""

    message = "This needs a user token (Authorization: Bearer <websocket token>)."

    def has_permission(self, request: Request, view) -> bool:
        return isinstance(request.user, TokenUser)


def caller_may(request: Request, permission: str) -> bool:
    return requires(permission)().has_permission(request, None)
