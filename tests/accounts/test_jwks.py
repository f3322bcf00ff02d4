"""Keys from a JWKS endpoint (accounts/jwks.py, SPEC §10): fetched on first
use, a rotated-in `kid` picked up, unknown kids refetched at most once a
minute, an endpoint that is down or hangs costing only the JWTs that need it.
Against a real HTTP server on loopback; the clock is the test's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from accounts.credentials import auser_token_claims, user_token_claims
from accounts.jwks import JwksCache
from accounts.jwt_tokens import _verifier
from accounts.tokens import InvalidToken, token_issue
from tests.support import jwts
from tests.support.jwts import AUDIENCE, ISSUER, Jwks, claims, key_pair

pytestmark = pytest.mark.timeout(20)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def endpoint() -> Iterator[Jwks]:
    with jwts.serving_jwks(Jwks(keys=[key_pair("RS256").jwk("k1")])) as served:
        yield served


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verified(cache: JwksCache, kid: str) -> bool:
    pending = cache.fetch_for(kid)
    if pending is not None:
        pending.result(timeout=5)
    return cache.key(kid) is not None


def test_the_first_token_fetches_the_set_once(endpoint, clock):
    cache = JwksCache(endpoint.url, clock=clock)
    assert verified(cache, "k1")
    assert verified(cache, "k1")
    assert endpoint.requests == 1


def test_a_rotated_in_kid_is_picked_up_once_a_minute_has_passed(endpoint, clock):
    cache = JwksCache(endpoint.url, clock=clock)
    assert verified(cache, "k1")
    endpoint.keys.append(key_pair("ES256").jwk("k2"))
    clock.now += 10
    assert not verified(cache, "k2")  # within the minute: no refetch
    assert endpoint.requests == 1
    clock.now += 50
    assert verified(cache, "k2")
    assert endpoint.requests == 2


def test_unknown_kids_never_refetch_more_than_once_a_minute(endpoint, clock):
    cache = JwksCache(endpoint.url, clock=clock)
    for n in range(50):
        verified(cache, f"unknown-{n}")
        clock.now += 1
    assert endpoint.requests == 1  # 50 s: the first token's fetch only
    clock.now += 11
    verified(cache, "unknown-again")
    assert endpoint.requests == 2


def test_a_stale_set_is_refreshed_in_the_background_and_drops_removed_keys(
    endpoint, clock
):
    cache = JwksCache(endpoint.url, clock=clock)
    assert verified(cache, "k1")
    endpoint.keys[:] = [key_pair("EdDSA").jwk("k3")]
    clock.now += 301
    # The stale key still verifies this token; the refresh runs meanwhile.
    assert cache.fetch_for("k1") is None
    deadline = time.monotonic() + 5
    while cache.key("k3") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.key("k3") is not None
    assert cache.key("k1") is None


def test_an_endpoint_that_is_down_keeps_the_cached_keys(endpoint, clock):
    cache = JwksCache(endpoint.url, clock=clock)
    assert verified(cache, "k1")
    cache._client.uri = jwts.dead_url()
    clock.now += 61
    assert not verified(cache, "k9")
    assert cache.key("k1") is not None


def test_hmac_and_weak_keys_in_a_jwks_are_ignored(clock):
    served = Jwks(
        keys=[
            {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "kid": "h"},
            key_pair("RS256").jwk("good"),
        ]
    )
    with jwts.serving_jwks(served):
        cache = JwksCache(served.url, clock=clock)
        assert verified(cache, "good")
        assert cache.key("h") is None


# --- through the verifier ----------------------------------------------------------


@pytest.fixture
def jwks_settings(settings, endpoint):
    settings.BRIDGE_JWT_KEYS = ()
    settings.BRIDGE_JWT_JWKS_URL = endpoint.url
    settings.BRIDGE_JWT_AUDIENCE = AUDIENCE
    settings.BRIDGE_JWT_ISSUER = ISSUER
    settings.BRIDGE_JWT_USER_CLAIM = "sub"
    _verifier.cache_clear()
    yield settings
    _verifier.cache_clear()


def test_a_jwt_whose_kid_is_in_the_jwks_is_accepted(jwks_settings, endpoint):
    token = key_pair("RS256").sign(claims("erin"), kid="k1")
    assert user_token_claims(token).user_id == "erin"
    assert user_token_claims(token).user_id == "erin"
    assert endpoint.requests == 1


def test_a_jwks_key_verifies_only_its_own_algorithm(jwks_settings):
    # HS256 keyed with the RSA key's PEM, naming the JWKS kid: refused.
    token = jwts.handmade(
        {"alg": "HS256", "kid": "k1"},
        claims(),
        key_pair("RS256").public_pem.encode(),
    )
    with pytest.raises(InvalidToken, match="no configured key verifies"):
        user_token_claims(token)


async def test_a_hanging_jwks_does_not_stall_the_loop_or_bridge_tokens(
    jwks_settings, endpoint
):
    endpoint.hang = True
    token = key_pair("RS256").sign(claims(), kid="k1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiting = asyncio.ensure_future(auser_token_claims(token))
    await asyncio.sleep(0.2)
    # The loop is free while the JWT waits: a Bridge token verifies at once.
    bridge = token_issue(user_id="frank").token
    assert (await auser_token_claims(bridge)).user_id == "frank"
    assert not waiting.done()
    with pytest.raises(InvalidToken, match="'kid' is not a key of the JWKS"):
        await waiting
    assert loop.time() - started < 5
    # Within the minute, the next unknown kid is refused without waiting.
    started = loop.time()
    with pytest.raises(InvalidToken, match="'kid' is not a key of the JWKS"):
        await auser_token_claims(token)
    assert loop.time() - started < 0.5


def test_a_jwt_without_kid_never_fetches_the_jwks(jwks_settings, endpoint):
    for _ in range(3):
        with pytest.raises(InvalidToken, match="no configured key verifies"):
            user_token_claims(key_pair("RS256").sign(claims()))
    assert endpoint.requests == 0
