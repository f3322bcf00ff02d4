"""JWTs from an existing login system, as WebSocket and user tokens (SPEC §10).

Verified with BRIDGE_JWT_KEYS (accounts/jwt_keys.py) and the keys of
BRIDGE_JWT_JWKS_URL (accounts/jwks.py). A JWT is accepted only when:
- it is at most MAX_JWT_BYTES long (checked before anything is decoded);
- its `alg` is one a configured key verifies (never `none`; an HMAC `alg`
  only with an HMAC secret, so a public key is never an HMAC secret);
- its signature verifies; it has `exp` and is not expired; `nbf` and `iat`
  are not in the future; `aud` and `iss` match BRIDGE_JWT_AUDIENCE and
  BRIDGE_JWT_ISSUER when those are set;
- the claim BRIDGE_JWT_USER_CLAIM (default `sub`) is a user id (SPEC §1; a
  non-negative integer, as simplejwt's `user_id`, counts as its digits);
- `topics`, when present, is a list of grants as POST /api/tokens takes;
- `token_type`, when present (simplejwt), is `access`: a refresh token is not
  a credential.
Every refusal is InvalidToken with a reason a client may read.
"""

from __future__ import annotations

import functools
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings
from jwt import exceptions as jwt_errors

from accounts.identifiers import is_topic_grant, is_user_id
from accounts.jwks import JwksCache
from accounts.jwt_keys import VerificationKey, parse_keys
from accounts.tokens import MAX_TOPIC_GRANTS, InvalidToken, TokenClaims

# Large enough for an OIDC access token with many roles or groups, small
# enough that a hostile one costs nothing to refuse (docs/security.md).
MAX_JWT_BYTES = 8192


@dataclass(frozen=True)
class JwtVerifier:
    keys: tuple[VerificationKey, ...]
    jwks: JwksCache | None
    audience: str | None
    issuer: str | None
    user_claim: str


def looks_like_jwt(raw: str) -> bool:
    """Three dot-separated parts. Bridge's own tokens have two, or three with
    an empty first one (a compressed payload; accounts/tokens.py)."""
    return raw.count(".") == 2 and not raw.startswith(".")


def verifier() -> JwtVerifier | None:
    """The configured verifier, or None when JWTs are not accepted."""
    return _verifier(
        tuple(settings.BRIDGE_JWT_KEYS),
        settings.BRIDGE_JWT_JWKS_URL,
        settings.BRIDGE_JWT_AUDIENCE,
        settings.BRIDGE_JWT_ISSUER,
        settings.BRIDGE_JWT_USER_CLAIM,
    )


@functools.lru_cache(maxsize=8)
def _verifier(
    keys: tuple[str, ...],
    jwks_url: str | None,
    audience: str | None,
    issuer: str | None,
    user_claim: str,
) -> JwtVerifier | None:
    # Cached per configuration: one JwksCache (and its fetch thread) per URL.
    if not keys and not jwks_url:
        return None
    return JwtVerifier(
        keys=parse_keys(keys),
        jwks=JwksCache(jwks_url) if jwks_url else None,
        audience=audience,
        issuer=issuer,
        user_claim=user_claim,
    )


class JwksPending(InvalidToken):
    """The JWT's `kid` is not cached and the JWKS is being fetched: wait for
    `fetch` (never on the event loop itself), then call jwt_claims() again."""

    def __init__(self, fetch: Future) -> None:
        super().__init__("JWT signing key is not known yet")
        self.fetch = fetch


def jwt_claims(raw: str) -> TokenClaims:
    """Who a valid JWT is for, what it grants and when it expires, with the
    keys known now; never blocks. Raises InvalidToken, or JwksPending when a
    JWKS fetch may know the key."""
    found = verifier()
    if found is None:
        raise InvalidToken("invalid token")
    if len(raw) > MAX_JWT_BYTES:
        raise InvalidToken(f"token too large (over {MAX_JWT_BYTES} bytes)")
    try:
        header = jwt.get_unverified_header(raw)
    except jwt_errors.PyJWTError:
        raise InvalidToken("malformed JWT") from None
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise InvalidToken("malformed JWT")
    if alg.lower() == "none":
        raise InvalidToken("JWT algorithm 'none' is not accepted")
    payload = _verified_payload(raw, alg, header.get("kid"), found)
    return TokenClaims(
        _user_id(payload, found.user_claim),
        _topics(payload),
        float(payload["exp"]),
    )


def _verified_payload(
    raw: str, alg: str, kid: object, found: JwtVerifier
) -> dict[str, Any]:
    """The payload, verified with the first key whose signature matches:
    BRIDGE_JWT_KEYS in order, then the JWKS key named by `kid`."""
    tried = False
    for key in found.keys:
        if alg in key.algorithms:
            tried = True
            payload = _decode(raw, alg, key, found)
            if payload is not None:
                return payload
    # A JWKS key is found by its `kid` only: without one, nothing to fetch.
    if found.jwks is not None and isinstance(kid, str):
        pending = found.jwks.fetch_for(kid)
        if pending is not None:
            raise JwksPending(pending)
        key = found.jwks.key(kid)
        if key is not None and alg in key.algorithms:
            tried = True
            payload = _decode(raw, alg, key, found)
            if payload is not None:
                return payload
        if key is None:
            raise InvalidToken("JWT 'kid' is not a key of the JWKS")
    if not tried:
        raise InvalidToken(f"no configured key verifies this JWT (alg {alg})")
    raise InvalidToken("JWT signature does not verify")


def _decode(
    raw: str, alg: str, key: VerificationKey, found: JwtVerifier
) -> dict[str, Any] | None:
    """The verified payload, or None when this key did not sign it."""
    try:
        return jwt.decode(
            raw,
            key.key,
            algorithms=[alg],
            audience=found.audience,
            issuer=found.issuer,
            options={
                "require": ["exp"],
                # SPEC §10: aud is checked only when one is configured.
                "verify_aud": found.audience is not None,
            },
        )
    except jwt_errors.InvalidSignatureError:
        return None
    except jwt_errors.PyJWTError as exc:
        raise InvalidToken(_reason(exc)) from None


def _reason(exc: jwt_errors.PyJWTError) -> str:
    if isinstance(exc, jwt_errors.ExpiredSignatureError):
        return "expired token"
    if isinstance(exc, jwt_errors.ImmatureSignatureError):
        return "token not yet valid"
    if isinstance(exc, jwt_errors.InvalidAudienceError):
        return "JWT audience is not accepted"
    if isinstance(exc, jwt_errors.InvalidIssuerError):
        return "JWT issuer is not accepted"
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        return f"JWT has no '{exc.claim}' claim"
    if isinstance(exc, jwt_errors.InvalidKeyError | jwt_errors.InvalidAlgorithmError):
        return "JWT algorithm is not accepted for this key"
    return "malformed JWT"


def _user_id(payload: dict[str, Any], claim: str) -> str:
    if claim not in payload:
        raise InvalidToken(f"JWT has no '{claim}' claim")
    value = payload[claim]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not is_user_id(value):
        raise InvalidToken(
            f"JWT claim '{claim}' is not a user id "
            "(^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$)"
        )
    token_type = payload.get("token_type")
    if token_type is not None and token_type != "access":
        raise InvalidToken("JWT is not an access token")
    return value


def _topics(payload: dict[str, Any]) -> tuple[str, ...]:
    grants = payload.get("topics")
    if grants is None:
        return ()
    if (
        not isinstance(grants, list)
        or len(grants) > MAX_TOPIC_GRANTS
        or not all(map(is_topic_grant, grants))
    ):
        raise InvalidToken(
            f"JWT claim 'topics' must be a list of at most {MAX_TOPIC_GRANTS} "
            "topics or '<namespace>:*'"
        )
    return tuple(dict.fromkeys(grants))
