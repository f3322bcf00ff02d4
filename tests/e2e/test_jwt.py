"""JWTs from an app's login system, and token expiry during a connection
(SPEC §10, §11), from outside: real daphne, real Redis, real WebSocket
clients, keys the tests generate and a JWKS served on loopback.

`bridge` accepts HS256 (a secret), RS256, ES256 and EdDSA (PEM public keys)
and the JWKS's keys, with an audience and an issuer; `hung_jwks` points at a
JWKS endpoint that accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support import jwts
from tests.support.credentials import mint_token, token_mode_env
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.jwts import AUDIENCE, ISSUER, Jwks, claims, key_pair
from tests.support.ws import Client, assert_no_message

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]


@pytest.fixture(scope="module")
def jwks() -> Iterator[Jwks]:
    with jwts.serving_jwks(Jwks(keys=[key_pair("RS256", 2).jwk("k1")])) as served:
        yield served


def _jwt_env(jwks_url: str) -> dict[str, str]:
    return token_mode_env(
        BRIDGE_JWT_KEYS=jwts.server_keys(),
        BRIDGE_JWT_JWKS_URL=jwks_url,
        BRIDGE_JWT_AUDIENCE=AUDIENCE,
        BRIDGE_JWT_ISSUER=ISSUER,
        BRIDGE_TOPIC_NAMESPACES="doc:token",
    )


@pytest.fixture(scope="module")
def servers(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
    jwks: Jwks,
) -> Iterator[tuple[DaphneProcess, DaphneProcess, Jwks]]:
    """Both daphnes, started together: (bridge, hung_jwks, the hung endpoint)."""
    with jwts.serving_jwks(Jwks(hang=True)) as hung:
        workdir = tmp_path_factory.mktemp("jwt")
        with (
            running_daphnes(
                redis_server.url,
                workdir,
                1,
                database=migrated_sqlite,
                **_jwt_env(jwks.url),
            ) as (bridge,),
            running_daphnes(
                redis_server.url,
                tmp_path_factory.mktemp("jwt-hung"),
                1,
                database=migrated_sqlite,
                **_jwt_env(hung.url),
            ) as (stalled,),
        ):
            yield bridge, stalled, hung


@pytest.fixture(scope="module")
def bridge(servers) -> DaphneProcess:
    return servers[0]


@pytest.fixture
async def sockets() -> Any:
    opened: list[Client] = []
    yield opened
    for client in opened:
        await client.close()


async def connect(
    server: DaphneProcess, opened: list[Client], query: str = "", **kwargs: Any
) -> tuple[Client, dict[str, Any]]:
    client = await Client.connect(f"{server.ws}/ws?{query}", **kwargs)
    opened.append(client)
    return client, await client.receive()


async def refusal(server: DaphneProcess, token: str) -> tuple[str, str, int | None]:
    """(error code, message, close code) of a refused handshake with `token`."""
    client = await Client.connect(
        f"{server.ws}/ws",
        additional_headers={"Authorization": f"Bearer {token}"},
    )
    try:
        frame = await client.receive()
        assert frame["type"] == "error", frame
        assert token not in str(frame)
        return frame["code"], frame["message"], await client.close_code()
    finally:
        await client.close()


def spec_time(unix: float) -> str:
    moment = datetime.fromtimestamp(unix, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- accepted wherever Bridge's own tokens are -------------------------------------


async def test_each_key_kind_connects_through_each_token_transport(bridge, sockets):
    user = fresh_user_id("jwt")
    body = claims(user)
    hs, rs = jwts.hs256(body), key_pair("RS256").sign(body)
    es, ed = key_pair("ES256").sign(body), key_pair("EdDSA").sign(body)
    bearer = {"additional_headers": {"Authorization": f"Bearer {rs}"}}
    attempts = [
        (f"token={hs}&user_id={user}", {}),
        ("", bearer),
        ("", {"subprotocols": ["bridge.v1", f"token.{es}"]}),
        (f"token={ed}", {}),
    ]
    for query, kwargs in attempts:
        client, connected = await connect(bridge, sockets, query, **kwargs)
        assert connected["type"] == "connected", connected
        assert connected["user_id"] == user
        assert connected["expires_at"] == spec_time(body["exp"])
        if "subprotocols" in kwargs:
            assert client.connection.subprotocol == "bridge.v1"
        await client.close()


async def test_a_jwks_key_connects_and_the_set_is_fetched_once(bridge, jwks, sockets):
    token = key_pair("RS256", 2).sign(claims(fresh_user_id("jwks")), kid="k1")
    for _ in range(3):
        _, connected = await connect(bridge, sockets, f"token={token}")
        assert connected["type"] == "connected", connected
    assert jwks.requests == 1
    # An unknown kid within the minute: refused at once, no refetch.
    started = time.monotonic()
    stranger = key_pair("RS256", 3).sign(claims(), kid="k-unknown")
    code, message, close = await refusal(bridge, stranger)
    assert (code, close) == ("unauthenticated", 4401)
    assert "kid" in message
    assert time.monotonic() - started < 1.0
    assert jwks.requests == 1


async def test_a_bridge_token_still_connects_and_carries_its_expiry(bridge, sockets):
    _, connected = await connect(bridge, sockets, f"token={mint_token('alice')}")
    assert connected["user_id"] == "alice"
    expires = datetime.fromisoformat(connected["expires_at"].replace("Z", "+00:00"))
    assert 3500 < expires.timestamp() - time.time() <= 3600


# --- refused: every one a 4401 with a reason ---------------------------------------

REFUSED = {
    "alg-none": (lambda: jwts.alg_none(claims()), "'none'"),
    "rsa-public-key-as-hmac-secret": (
        lambda: jwts.rsa_pem_as_hmac_secret(claims()),
        "does not verify",
    ),
    "expired": (lambda: jwts.hs256(claims(ttl=-2)), "expired token"),
    "not-yet-valid": (
        lambda: jwts.hs256(claims(nbf=int(time.time()) + 120)),
        "not yet valid",
    ),
    "wrong-audience": (lambda: jwts.hs256(claims(aud="other")), "audience"),
    "wrong-issuer": (lambda: jwts.hs256(claims(iss="https://evil/")), "issuer"),
    "bad-user-id": (lambda: jwts.hs256(claims("al ice")), "not a user id"),
    "missing-user-claim": (lambda: jwts.hs256(claims(None)), "no 'sub' claim"),
    "missing-exp": (lambda: jwts.hs256(claims(exp=None)), "no 'exp' claim"),
    "oversized": (lambda: jwts.hs256(claims(pad="x" * 9000)), "too large"),
    "garbage": (lambda: "eyJhbGciOi.eyJzdWIi.c2ln", "malformed JWT"),
    "wrong-secret": (lambda: jwts.hs256(claims(), "z" * 40), "does not verify"),
    "bad-topics": (lambda: jwts.hs256(claims(topics="doc:1")), "'topics'"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_a_bad_jwt_is_refused_with_4401_and_a_reason(bridge, case):
    build, reason = REFUSED[case]
    code, message, close = await refusal(bridge, build())
    assert (code, close) == ("unauthenticated", 4401)
    assert reason in message


async def test_a_jwt_for_another_user_than_user_id_is_forbidden(bridge):
    client = await Client.connect(
        f"{bridge.ws}/ws?user_id=bob&token={jwts.hs256(claims('alice'))}"
    )
    try:
        assert (await client.receive())["code"] == "forbidden"
        assert await client.close_code() == 4403
    finally:
        await client.close()


# --- topics claim ------------------------------------------------------------------


async def test_the_topics_claim_grants_subscriptions_and_nothing_else(bridge, sockets):
    token = key_pair("EdDSA").sign(claims(fresh_user_id(), topics=["doc:1"]))
    client, _ = await connect(bridge, sockets, f"token={token}")
    await client.send({"type": "subscribe", "topic": "doc:1"})
    assert (await client.receive_type("subscribed"))["topic"] == "doc:1"
    await client.send({"type": "subscribe", "topic": "doc:2", "ref": "r"})
    refused = await client.receive_type("error")
    assert (refused["code"], refused["topic"]) == ("forbidden", "doc:2")


# --- expiry during a connection ----------------------------------------------------


async def test_an_expiring_jwt_warns_then_closes_4401_at_its_expiry(bridge, sockets):
    exp = int(time.time()) + 3
    client, connected = await connect(
        bridge, sockets, f"token={jwts.hs256(claims(fresh_user_id(), exp=exp))}"
    )
    assert connected["expires_at"] == spec_time(exp)
    warning = await client.receive_type("token_expiring")  # less than 60 s left
    assert warning == {"type": "token_expiring", "expires_at": spec_time(exp)}
    error = await client.receive_type("error", timeout=6)
    closed_at = time.time()
    assert error["code"] == "token_expired"
    assert await client.close_code() == 4401
    assert exp <= closed_at < exp + 1.0


async def test_a_bridge_token_expires_the_same_way(bridge, sockets):
    client, connected = await connect(
        bridge, sockets, f"token={mint_token('alice', ttl_seconds=2)}"
    )
    assert connected["expires_at"] is not None
    await client.receive_type("token_expiring")
    assert (await client.receive_type("error", timeout=5))["code"] == "token_expired"
    assert await client.close_code() == 4401


async def test_a_refresh_keeps_the_connection_open_past_the_first_expiry(
    bridge, sockets
):
    user = fresh_user_id()
    exp = int(time.time()) + 3
    client, _ = await connect(
        bridge, sockets, f"token={jwts.hs256(claims(user, exp=exp))}"
    )
    await client.receive_type("token_expiring")
    later = int(time.time()) + 600
    fresh = key_pair("ES256").sign(claims(user, exp=later))
    await client.send({"type": "refresh", "token": fresh, "ref": "r1"})
    refreshed = await client.receive_type("refreshed")
    assert refreshed == {
        "type": "refreshed",
        "expires_at": spec_time(later),
        "ref": "r1",
    }
    await asyncio.sleep(max(0.0, exp + 1 - time.time()))
    await client.send({"type": "ping"})
    assert (await client.receive_type("pong"))["type"] == "pong"
    # A Bridge token refreshes too.
    await client.send({"type": "refresh", "token": mint_token(user)})
    assert (await client.receive_type("refreshed"))["expires_at"] is not None


async def test_a_refused_refresh_leaves_the_connection_to_expire(bridge, sockets):
    user = fresh_user_id()
    exp = int(time.time()) + 3
    client, _ = await connect(
        bridge, sockets, f"token={jwts.hs256(claims(user, exp=exp))}"
    )
    await client.receive_type("token_expiring")
    other = jwts.hs256(claims(fresh_user_id(), ttl=600))
    await client.send({"type": "refresh", "token": other, "ref": "a"})
    error = await client.receive_type("error")
    assert (error["code"], error["ref"]) == ("forbidden", "a")
    for bad in (jwts.hs256(claims(user, ttl=-5)), "not-a-token", "bk_live_nope"):
        await client.send({"type": "refresh", "token": bad, "ref": "b"})
        error = await client.receive_type("error")
        assert (error["code"], error["ref"]) == ("unauthenticated", "b")
        assert bad not in error["message"]
    await client.send({"type": "refresh"})
    assert (await client.receive_type("error"))["code"] == "invalid_frame"
    error = await client.receive_type("error", timeout=6)
    assert error["code"] == "token_expired"
    assert await client.close_code() == 4401


async def test_a_refresh_widens_and_narrows_topic_grants(bridge, sockets):
    user = fresh_user_id()
    first = jwts.hs256(claims(user, topics=["doc:1", "doc:2"]))
    client, _ = await connect(bridge, sockets, f"token={first}")
    for topic in ("doc:1", "doc:2"):
        await client.send({"type": "subscribe", "topic": topic})
        await client.receive_type("subscribed")
    second = jwts.hs256(claims(user, topics=["doc:1", "doc:3"]))
    await client.send({"type": "refresh", "token": second})
    await client.receive_type("refreshed")
    ended = await client.receive_type("unsubscribed")
    assert ended == {"type": "unsubscribed", "topic": "doc:2", "reason": "removed"}
    await client.send({"type": "subscribe", "topic": "doc:3"})
    assert (await client.receive_type("subscribed"))["topic"] == "doc:3"
    await assert_no_message(client, 0.3)  # doc:1 stays


# --- /api/me/* ---------------------------------------------------------------------


async def test_the_user_endpoints_take_a_jwt(bridge):
    user = fresh_user_id()
    token = key_pair("RS256").sign(claims(user, topics=["doc:7"]))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=bridge.http, timeout=10) as http:
        messages = await http.get("/api/me/messages", headers=headers)
        assert messages.status_code == 200, messages.text
        assert messages.json()["messages"] == []
        unread = await http.get("/api/me/unread", headers=headers)
        assert unread.status_code == 200, unread.text
        granted = await http.get("/api/topics/doc:7/messages", headers=headers)
        assert granted.status_code == 200, granted.text
        other = await http.get("/api/topics/doc:8/messages", headers=headers)
        assert other.status_code == 403
        expired = jwts.hs256(claims(user, ttl=-5))
        refused = await http.get(
            "/api/me/messages", headers={"Authorization": f"Bearer {expired}"}
        )
    assert refused.status_code == 401
    body = refused.json()
    assert set(body) == {"error", "message", "detail"}
    assert body["error"] == "not_authenticated"
    assert "expired" in body["message"]


# --- a JWKS endpoint that hangs -----------------------------------------------------


async def test_a_hanging_jwks_refuses_its_jwts_and_stalls_nothing_else(
    servers, sockets
):
    _, stalled, hung = servers
    token = key_pair("RS256", 2).sign(claims(), kid="k1")
    started = time.monotonic()
    waiting = asyncio.ensure_future(refusal(stalled, token))
    await asyncio.sleep(0.3)
    # Meanwhile Bridge tokens and BRIDGE_JWT_KEYS connect at once.
    for credential in (mint_token("alice"), jwts.hs256(claims("alice"))):
        before = time.monotonic()
        _, connected = await connect(stalled, sockets, f"token={credential}")
        assert connected["type"] == "connected", connected
        assert time.monotonic() - before < 1.0
    assert not waiting.done()
    code, _, close = await waiting
    assert (code, close) == ("unauthenticated", 4401)
    assert time.monotonic() - started < 6
    assert hung.requests == 1
    # Within the minute the next one is refused without waiting.
    before = time.monotonic()
    assert (await refusal(stalled, token))[2] == 4401
    assert time.monotonic() - before < 1.0
