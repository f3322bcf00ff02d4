"""JWT verification (SPEC §10): every key kind is accepted, every forgery and
bad claim is refused with a reason (accounts/jwt_tokens.py)."""

from __future__ import annotations

import json
import time

import pytest

from accounts.credentials import auser_token_claims, user_token_claims
from accounts.jwt_tokens import MAX_JWT_BYTES, jwt_claims, looks_like_jwt
from accounts.tokens import InvalidToken, token_issue
from tests.support import jwts
from tests.support.jwts import AUDIENCE, HS_SECRET, ISSUER, claims, key_pair

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(autouse=True)
def jwt_settings(settings):
    settings.BRIDGE_JWT_KEYS = tuple(json.loads(jwts.server_keys()))
    settings.BRIDGE_JWT_JWKS_URL = None
    settings.BRIDGE_JWT_AUDIENCE = AUDIENCE
    settings.BRIDGE_JWT_ISSUER = ISSUER
    settings.BRIDGE_JWT_USER_CLAIM = "sub"
    return settings


def refused(token: str) -> str:
    with pytest.raises(InvalidToken) as raised:
        user_token_claims(token)
    return str(raised.value)


# --- accepted ---------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_a_jwt_signed_with_a_configured_public_key_names_its_user(alg):
    body = claims("alice", topics=["room:42", "doc:*"])
    found = user_token_claims(key_pair(alg).sign(body))
    assert found.user_id == "alice"
    assert found.topics == ("room:42", "doc:*")
    assert found.expires_at == body["exp"]


def test_a_jwt_signed_with_the_hmac_secret_is_accepted_without_topics():
    found = user_token_claims(jwts.hs256(claims("bob")))
    assert (found.user_id, found.topics) == ("bob", ())


def test_any_key_of_the_list_verifies_during_a_rotation(settings):
    settings.BRIDGE_JWT_KEYS = ("x" * 40, key_pair("RS256", 1).public_pem, HS_SECRET)
    assert user_token_claims(jwts.hs256(claims())).user_id == "alice"
    assert user_token_claims(key_pair("RS256", 1).sign(claims())).user_id == "alice"
    # The RS256 key of the default list is no longer configured.
    assert "does not verify" in refused(key_pair("RS256").sign(claims()))


def test_a_numeric_user_claim_counts_as_its_digits_as_simplejwt_issues_it(settings):
    settings.BRIDGE_JWT_USER_CLAIM = "user_id"
    token = jwts.hs256(claims(None, user_id=42, token_type="access"))
    assert user_token_claims(token).user_id == "42"


def test_aud_and_iss_are_not_checked_when_not_configured(settings):
    settings.BRIDGE_JWT_AUDIENCE = None
    settings.BRIDGE_JWT_ISSUER = None
    token = jwts.hs256(claims(aud="someone-else", iss="https://elsewhere/"))
    assert user_token_claims(token).user_id == "alice"


async def test_the_async_path_verifies_on_the_loop_without_fetching():
    found = await auser_token_claims(key_pair("ES256").sign(claims("carol")))
    assert found.user_id == "carol"


def test_bridge_tokens_still_take_their_own_path():
    issued = token_issue(user_id="dave", topics=["room:1"])
    assert not looks_like_jwt(issued.token)
    found = user_token_claims(issued.token)
    assert (found.user_id, found.topics) == ("dave", ("room:1",))
    assert found.expires_at == issued.expires_at.timestamp()


# --- refused ----------------------------------------------------------------------


def test_alg_none_is_refused():
    assert "'none'" in refused(jwts.alg_none(claims()))
    # Any spelling, even with a signature attached.
    forged = jwts.handmade({"alg": "NONE"}, claims(), HS_SECRET.encode())
    assert "'none'" in refused(forged)


def test_a_header_without_a_string_alg_is_malformed():
    forged = jwts.handmade({"alg": ["HS256"]}, claims(), HS_SECRET.encode())
    assert refused(forged) == "malformed JWT"


def test_an_rsa_public_key_used_as_an_hmac_secret_is_refused():
    # Algorithm confusion: the PEM is a key, never an HMAC secret.
    assert "does not verify" in refused(jwts.rsa_pem_as_hmac_secret(claims()))


def test_an_hs256_token_is_refused_when_only_public_keys_are_configured(settings):
    settings.BRIDGE_JWT_KEYS = (key_pair("RS256").public_pem,)
    reason = refused(jwts.rsa_pem_as_hmac_secret(claims()))
    assert reason == "no configured key verifies this JWT (alg HS256)"


def test_a_token_signed_with_another_secret_is_refused():
    assert "does not verify" in refused(jwts.hs256(claims(), secret="y" * 40))


def test_an_expired_token_is_refused():
    assert refused(jwts.hs256(claims(ttl=-5))) == "expired token"


def test_a_token_not_yet_valid_is_refused():
    token = jwts.hs256(claims(nbf=int(time.time()) + 60))
    assert refused(token) == "token not yet valid"


def test_a_token_for_another_audience_is_refused():
    assert "audience" in refused(jwts.hs256(claims(aud="another-app")))


def test_a_token_without_an_audience_is_refused_when_one_is_configured():
    assert refused(jwts.hs256(claims(aud=None))) == "JWT has no 'aud' claim"


def test_a_token_from_another_issuer_is_refused():
    assert "issuer" in refused(jwts.hs256(claims(iss="https://evil.test/")))


def test_a_token_without_exp_is_refused():
    assert refused(jwts.hs256(claims(exp=None))) == "JWT has no 'exp' claim"


@pytest.mark.parametrize(
    "user", ["", "-alice", "a" * 65, "al ice", "alice\n", 1.5, True, -1, ["alice"]]
)
def test_a_user_claim_that_is_not_a_user_id_is_refused(settings, user):
    settings.BRIDGE_JWT_USER_CLAIM = "uid"
    reason = refused(jwts.hs256(claims(None, uid=user)))
    assert reason.startswith("JWT claim 'uid' is not a user id")


def test_a_token_without_the_user_claim_is_refused():
    assert refused(jwts.hs256(claims(None))) == "JWT has no 'sub' claim"


def test_a_simplejwt_refresh_token_is_not_a_credential():
    token = jwts.hs256(claims(token_type="refresh"))
    assert refused(token) == "JWT is not an access token"


@pytest.mark.parametrize(
    "topics", ["room:42", ["user:alice"], ["room"], [1], ["room:1"] * 101]
)
def test_a_bad_topics_claim_is_refused(topics):
    assert "'topics'" in refused(jwts.hs256(claims(topics=topics)))


def test_an_oversized_token_is_refused_before_it_is_decoded():
    token = jwts.hs256(claims(padding="x" * MAX_JWT_BYTES))
    assert refused(token) == f"token too large (over {MAX_JWT_BYTES} bytes)"


@pytest.mark.parametrize(
    "garbage", ["a.b.c", "eyJ.eyJ.sig", "....", "x" * 20 + ".y.z", "é.é.é"]
)
def test_garbage_is_refused(garbage):
    refused(garbage)


def test_jwts_are_refused_when_none_are_configured(settings):
    settings.BRIDGE_JWT_KEYS = ()
    assert refused(jwts.hs256(claims())) == "invalid token"


def test_no_refusal_quotes_the_token():
    token = jwts.hs256(claims(aud="another-app"))
    with pytest.raises(InvalidToken) as raised:
        jwt_claims(token)
    assert token not in str(raised.value)
