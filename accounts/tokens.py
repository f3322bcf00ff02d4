"""Signed, expiring WebSocket tokens bound to one user id (SPEC §4).

A token is `<payload>.<signature>` in URL-safe base64 and dots only, so it fits
a query parameter, a Bearer header and a `Sec-WebSocket-Protocol` item as is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing

from accounts.identifiers import is_user_id

_SALT = "bridge.websocket-token"


class InvalidToken(Exception):
    """Bad signature, malformed, or expired; the message says which."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    user_id: str
    expires_at: datetime


def _signer() -> signing.Signer:
    return signing.Signer(
        salt=_SALT, sep=".", fallback_keys=settings.SECRET_KEY_FALLBACKS
    )


def token_issue(*, user_id: str, ttl_seconds: int | None = None) -> IssuedToken:
    if not is_user_id(user_id):
        raise ValueError(f"not a user id: {user_id!r}")
    ttl = settings.BRIDGE_TOKEN_TTL if ttl_seconds is None else ttl_seconds
    expires = int(time.time()) + ttl
    token = _signer().sign_object({"u": user_id, "e": expires})
    return IssuedToken(token, user_id, datetime.fromtimestamp(expires, UTC))


def token_user_id(token: str) -> str:
    """The user id a valid, unexpired token names; raises InvalidToken."""
    try:
        payload = _signer().unsign_object(token)
    except (signing.BadSignature, ValueError, UnicodeError):
        raise InvalidToken("invalid token") from None
    if not isinstance(payload, dict) or not is_user_id(payload.get("u")):
        raise InvalidToken("invalid token")
    expires = payload.get("e")
    if not isinstance(expires, int) or expires <= time.time():
        raise InvalidToken("expired token")
    return payload["u"]
