"""A user's token, whichever kind: Bridge's own (accounts/tokens.py) or a JWT
from the app's login system (accounts/jwt_tokens.py, SPEC §10). The one place
the WebSocket handshake, `refresh` frames and the /api/me/* endpoints turn a
token into TokenClaims."""

from __future__ import annotations

import asyncio

from accounts.jwks import FETCH_TIMEOUT
from accounts.jwt_tokens import JwksPending, jwt_claims, looks_like_jwt
from accounts.tokens import InvalidToken, TokenClaims, token_claims

# The fetch times out by itself after FETCH_TIMEOUT; this only bounds a wait
# for a fetch that is somehow stuck beyond that.
WAIT_TIMEOUT = FETCH_TIMEOUT + 1.0

__all__ = ["InvalidToken", "TokenClaims", "auser_token_claims", "user_token_claims"]


def user_token_claims(raw: str) -> TokenClaims:
    """For synchronous callers (HTTP views, on a request thread): may wait up
    to FETCH_TIMEOUT for a JWKS fetch. Raises InvalidToken."""
    if not looks_like_jwt(raw):
        return token_claims(raw)
    try:
        return jwt_claims(raw)
    except JwksPending as pending:
        try:
            pending.fetch.result(timeout=WAIT_TIMEOUT)
        except TimeoutError:
            raise InvalidToken("the JWKS endpoint did not answer") from None
    return _after_fetch(raw)


async def auser_token_claims(raw: str) -> TokenClaims:
    """For the event loop: verifying is CPU only, and a JWKS fetch is awaited
    on its own thread, so nothing blocks the loop. Raises InvalidToken."""
    if not looks_like_jwt(raw):
        return token_claims(raw)
    try:
        return jwt_claims(raw)
    except JwksPending as pending:
        # Shielded: the fetch is shared with other handshakes.
        waiting = asyncio.shield(asyncio.wrap_future(pending.fetch))
        try:
            await asyncio.wait_for(waiting, WAIT_TIMEOUT)
        except TimeoutError:
            raise InvalidToken("the JWKS endpoint did not answer") from None
    return _after_fetch(raw)


def _after_fetch(raw: str) -> TokenClaims:
    try:
        return jwt_claims(raw)
    except JwksPending:  # another fetch began meanwhile: do not wait twice
        raise InvalidToken("JWT signing key is not known") from None
