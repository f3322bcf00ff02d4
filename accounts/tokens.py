"""Signed, expiring WebSocket tokens bound to one user id (SPEC §4).

A token is `<payload>.<signature>` in URL-safe base64 and dots only, so it fits
a query parameter, a Bearer header and a `Sec-WebSocket-Protocol` item as is.

The payload is `{"u": user id, "e": expiry}`, plus `"t": [topic grants]` when
the token grants topics (SPEC §8): a token without grants is byte for byte
what it was before topics, so tokens issued before them stay valid. A token
with grants is zlib-compressed when that makes it shorter (Django's signing
prefixes it with a '.'), since a hundred grants of one namespace repeat a lot.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing

from accounts.identifiers import is_topic_grant, is_user_id

_SALT = "bridge.websocket-token"
MAX_TOPIC_GRANTS = 100


class InvalidToken(Exception):
    """Bad signature, malformed, or expired; the message says which."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    user_id: str
    expires_at: datetime
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says: whose it is and which topics it grants."""

    user_id: str
    topics: tuple[str, ...] = ()
    # When the token stops being valid (Unix time); None for credentials that
    # do not expire (SPEC §10 `expires_at`).
    expires_at: float | None = None


def _signer() -> signing.Signer:
    return signing.Signer(
        salt=_SALT, sep=".", fallback_keys=settings.SECRET_KEY_FALLBACKS
    )


def token_issue(
    *,
    user_id: str,
    ttl_seconds: int | None = None,
    topics: Sequence[str] = (),
) -> IssuedToken:
    """A signed token for `user_id`, granting `topics` (topics or `ns:*`, at
    most MAX_TOPIC_GRANTS); raises ValueError for a bad user id or grant."""
    if not is_user_id(user_id):
        raise ValueError(f"not a user id: {user_id!r}")
    grants = tuple(dict.fromkeys(topics))
    if len(grants) > MAX_TOPIC_GRANTS:
        raise ValueError(f"at most {MAX_TOPIC_GRANTS} topic grants")
    bad = [grant for grant in grants if not is_topic_grant(grant)]
    if bad:
        raise ValueError(f"not a topic or '<namespace>:*': {bad[0]!r}")
    ttl = settings.BRIDGE_TOKEN_TTL if ttl_seconds is None else ttl_seconds
    expires = int(time.time()) + ttl
    payload: dict = {"u": user_id, "e": expires}
    if grants:
        payload["t"] = list(grants)
    token = _signer().sign_object(payload, compress=bool(grants))
    return IssuedToken(token, user_id, datetime.fromtimestamp(expires, UTC), grants)


def token_claims(token: str) -> TokenClaims:
    """The user id and topic grants of a valid, unexpired token; raises
    InvalidToken."""
    try:
        payload = _signer().unsign_object(token)
    except (signing.BadSignature, ValueError, UnicodeError, zlib.error):
        raise InvalidToken("invalid token") from None
    if not isinstance(payload, dict) or not is_user_id(payload.get("u")):
        raise InvalidToken("invalid token")
    expires = payload.get("e")
    if not isinstance(expires, int) or expires <= time.time():
        raise InvalidToken("expired token")
    grants = payload.get("t", [])
    if not isinstance(grants, list) or not all(map(is_topic_grant, grants)):
        raise InvalidToken("invalid token")
    return TokenClaims(payload["u"], tuple(grants), float(expires))


def token_user_id(token: str) -> str:
    """The user id a valid, unexpired token names; raises InvalidToken."""
    return token_claims(token).user_id
