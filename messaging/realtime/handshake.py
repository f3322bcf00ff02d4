"""What a WebSocket handshake asks for, checked in SPEC §2's order:
syntax (4400), authentication (4401), identity and Origin (4403). The
connection limit (4429) is checked by the consumer against the registry."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from django.conf import settings
from django.db import DatabaseError
from django.utils.functional import empty

from accounts.credentials import InvalidToken, auser_token_claims
from accounts.identifiers import is_user_id
from accounts.key_cache import authenticate_api_key
from accounts.keys import looks_like_api_key
from messaging.frames import MAX_SEQ
from messaging.realtime.origins import origin_allowed
from messaging.realtime.session_auth import session_user
from messaging.ws_database import run_db

SUBPROTOCOL = "bridge.v1"
_TOKEN_PROTOCOL_PREFIX = "token."


class HandshakeRefused(Exception):
    """Close the socket with `close_code` after an error frame with `error_code`."""

    def __init__(
        self,
        close_code: int,
        error_code: str,
        message: str,
        *,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.error_code = error_code
        self.message = message
        self.retry_after_ms = retry_after_ms


def _bad_request(message: str) -> HandshakeRefused:
    return HandshakeRefused(4400, "bad_request", message)


def _unauthenticated(message: str) -> HandshakeRefused:
    return HandshakeRefused(4401, "unauthenticated", message)


def _forbidden(message: str) -> HandshakeRefused:
    return HandshakeRefused(4403, "forbidden", message)


@dataclass(frozen=True)
class Identity:
    """Who a connection is: its user id, the topics its token grants
    (SPEC §8 "Tokens") and when the token expires (Unix time, SPEC §10).
    Sessions, open mode and API keys grant none and do not expire."""

    user_id: str
    topic_grants: tuple[str, ...] = ()
    expires_at: float | None = None


@dataclass(frozen=True)
class Handshake:
    user_id: str | None
    # None: live messages only; N: first replay every kept message with seq > N.
    last_seq: int | None
    token: str | None
    # "bridge.v1" when the client offered it; never the token item.
    subprotocol: str | None
    origin: str | None
    host: str
    scheme: str


def parse_handshake(scope: dict) -> Handshake:
    """Check the request's syntax; raises HandshakeRefused(4400)."""
    try:
        params = parse_qs(scope.get("query_string", b"").decode("utf-8", "strict"))
    except UnicodeDecodeError:
        raise _bad_request("the query string is not UTF-8") from None
    user_id = _single(params, "user_id")
    if user_id is not None and not is_user_id(user_id):
        raise _bad_request("user_id must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    if user_id is None and settings.BRIDGE_AUTH_MODE == "open":
        raise _bad_request("user_id is required")
    headers = request_headers(scope)
    offered = [p.strip() for p in scope.get("subprotocols") or []]
    return Handshake(
        user_id=user_id,
        last_seq=_last_seq(params),
        token=_token(params, headers, offered),
        subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None,
        origin=headers.get("origin"),
        host=headers.get("host", ""),
        scheme=scope.get("scheme", "ws"),
    )


async def authenticate(handshake: Handshake, scope: dict) -> Identity:
    """Who this connection is for; raises HandshakeRefused (4401, 4403)."""
    if settings.BRIDGE_AUTH_MODE == "open":
        identity = Identity(handshake.user_id)
    elif handshake.token is not None:
        identity = await _token_identity(handshake.token)
    else:
        identity = Identity(await _session_user_id(scope))
    if handshake.user_id is not None and handshake.user_id != identity.user_id:
        raise _forbidden("the token is for another user")
    if not origin_allowed(
        handshake.origin, scope_scheme=handshake.scheme, host_header=handshake.host
    ):
        raise _forbidden("this Origin may not connect")
    return identity


async def _token_identity(token: str) -> Identity:
    if looks_like_api_key(token):
        try:
            handle = await _api_key_account(token)
        except DatabaseError:
            raise HandshakeRefused(1013, "unavailable", "try again later") from None
        if handle is None:
            raise _unauthenticated("invalid or revoked API key")
        return Identity(handle)
    try:
        claims = await auser_token_claims(token)
    except InvalidToken as exc:
        raise _unauthenticated(str(exc)) from None
    return Identity(claims.user_id, claims.topics, claims.expires_at)


async def _api_key_account(raw: str) -> str | None:
    """A public account may connect with one of its API keys as its token
    (verified through accounts/key_cache.py: malformed keys cost no query)."""
    verified = await authenticate_api_key(raw)
    return verified.handle if verified is not None else None


async def _session_user_id(scope: dict) -> str:
    user = scope.get("user")
    if user is None:
        raise _unauthenticated("a token is required")
    if getattr(user, "_wrapped", None) is empty:  # a plausible cookie: look it up
        try:
            user = await run_db(session_user, scope)
        except DatabaseError:
            raise HandshakeRefused(1013, "unavailable", "try again later") from None
    if not user.is_authenticated:
        raise _unauthenticated("a token is required")
    username = user.get_username()
    if not is_user_id(username):
        raise _forbidden("this account's username is not a valid user id")
    return username


def request_headers(scope: dict) -> dict[str, str]:
    """The handshake's headers, names lower-cased (the last of a repeated one)."""
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        headers[name.decode("latin-1").lower()] = value.decode("latin-1")
    return headers


def _token(
    params: dict[str, list[str]], headers: dict[str, str], offered: list[str]
) -> str | None:
    query_token = _single(params, "token")
    if query_token:
        return query_token
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    for protocol in offered:
        if protocol.startswith(_TOKEN_PROTOCOL_PREFIX):
            return protocol[len(_TOKEN_PROTOCOL_PREFIX) :]
    return None


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise _bad_request(f"{name} is given more than once")
    return values[0]


def _last_seq(params: dict[str, list[str]]) -> int | None:
    raw = _single(params, "last_seq")
    if raw is None:
        return None
    # The length check comes first: int() refuses strings over 4,300 digits.
    if len(raw) > 19 or not raw.isascii() or not raw.isdigit() or int(raw) > MAX_SEQ:
        raise _bad_request("last_seq must be a non-negative integer")
    return int(raw)
