"""WebSocket handshake authentication and Origin checks on real daphne (SPEC §2, §4).

One daphne in token mode with BRIDGE_ALLOWED_ORIGINS=https://app.example.com.
Every refusal must come as an `error` frame, then the close code; every accepted
handshake's `connected` frame names the user the credentials are for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.credentials import (
    CREATE_CREDENTIALS,
    django_shell,
    mint_token,
    token_mode_env,
)
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ws import Client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

ALLOWED_ORIGIN = "https://app.example.com"
EVIL_ORIGIN = "https://evil.test"


@pytest.fixture(scope="module")
def bridge(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    env = token_mode_env(
        ALLOWED_HOSTS="127.0.0.1,localhost,app.example.com",
        BRIDGE_ALLOWED_ORIGINS=ALLOWED_ORIGIN,
    )
    workdir = tmp_path_factory.mktemp("handshake-auth")
    with running_daphnes(
        redis_server.url, workdir, 1, database=migrated_sqlite, **env
    ) as (process,):
        yield process


@pytest.fixture(scope="module")
def creds(bridge: DaphneProcess) -> dict[str, str]:
    """API keys and a logged-in session, in the server's database."""
    return django_shell(bridge.env, CREATE_CREDENTIALS)


@dataclass(frozen=True)
class Attempt:
    """How one handshake is made: query string and `websockets.connect` kwargs."""

    query: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    # A credential that must never come back in a frame or a response header.
    secret: str | None = None


Build = Callable[[dict[str, str], DaphneProcess], Attempt]


def token_query(token: str, user_id: str | None = None, **kwargs: Any) -> Attempt:
    query = f"token={token}" + (f"&user_id={user_id}" if user_id else "")
    return Attempt(query, kwargs, secret=token)


def forged_signature() -> str:
    return mint_token("alice", secret_key="not-the-servers-secret-key-" + "x" * 30)


def tampered_payload() -> str:
    # mallory's payload under alice's (valid) signature.
    payload = mint_token("mallory").rsplit(".", 1)[0]
    signature = mint_token("alice").rsplit(".", 1)[1]
    return f"{payload}.{signature}"


async def open_socket(bridge: DaphneProcess, attempt: Attempt) -> Client:
    return await Client.connect(f"{bridge.ws}/ws?{attempt.query}", **attempt.kwargs)


async def refusal(bridge: DaphneProcess, attempt: Attempt) -> tuple[str, int | None]:
    """(error code, close code) of a handshake the server must refuse."""
    client = await open_socket(bridge, attempt)
    try:
        frame = await client.receive()
        assert frame["type"] == "error", frame
        assert isinstance(frame["message"], str) and frame["message"]
        if attempt.secret:
            assert attempt.secret not in str(frame)
            assert attempt.secret not in str(client.connection.response.headers)
        return frame["code"], await client.close_code()
    finally:
        await client.close()


async def connected_as(bridge: DaphneProcess, attempt: Attempt) -> str:
    """The user id of a handshake the server must accept."""
    client = await open_socket(bridge, attempt)
    try:
        frame = await client.receive()
        assert frame["type"] == "connected", frame
        return frame["user_id"]
    finally:
        await client.close()


UNAUTHENTICATED = ("unauthenticated", 4401)
FORBIDDEN = ("forbidden", 4403)
BAD_REQUEST = ("bad_request", 4400)

REFUSED: dict[str, tuple[Build, tuple[str, int]]] = {
    # --- authentication (4401) ---
    "no-credentials": (lambda c, b: Attempt("user_id=alice"), UNAUTHENTICATED),
    "no-credentials-no-user-id": (lambda c, b: Attempt(""), UNAUTHENTICATED),
    "bad-signature": (lambda c, b: token_query(forged_signature()), UNAUTHENTICATED),
    "tampered-payload": (
        lambda c, b: token_query(tampered_payload(), "mallory"),
        UNAUTHENTICATED,
    ),
    "expired": (
        lambda c, b: token_query(mint_token("alice", ttl_seconds=-1), "alice"),
        UNAUTHENTICATED,
    ),
    "garbage-token": (lambda c, b: token_query("not-a-token"), UNAUTHENTICATED),
    "bad-bearer-header": (
        lambda c, b: Attempt(
            "user_id=alice",
            {"additional_headers": {"Authorization": f"Bearer {forged_signature()}"}},
        ),
        UNAUTHENTICATED,
    ),
    "bad-subprotocol-token": (
        lambda c, b: Attempt(
            "",
            {"subprotocols": ["bridge.v1", f"token.{forged_signature()}"]},
        ),
        UNAUTHENTICATED,
    ),
    "service-key-as-token": (
        lambda c, b: token_query(c["service_key"]),
        UNAUTHENTICATED,
    ),
    "revoked-account-key": (
        lambda c, b: token_query(c["revoked_key"]),
        UNAUTHENTICATED,
    ),
    "inactive-account-key": (
        lambda c, b: token_query(c["inactive_account_key"]),
        UNAUTHENTICATED,
    ),
    "unknown-session-cookie": (
        lambda c, b: Attempt(
            "", {"additional_headers": {"Cookie": "sessionid=nosuchsession123"}}
        ),
        UNAUTHENTICATED,
    ),
    # --- identity (4403) ---
    "token-for-another-user": (
        lambda c, b: token_query(mint_token("alice"), "bob"),
        FORBIDDEN,
    ),
    "account-key-for-another-user": (
        lambda c, b: token_query(c["account_key"], "alice"),
        FORBIDDEN,
    ),
    "session-for-another-user": (
        lambda c, b: Attempt(
            "user_id=alice",
            {"additional_headers": {"Cookie": f"sessionid={c['session_key']}"}},
        ),
        FORBIDDEN,
    ),
    # --- Origin (4403), with credentials that are otherwise good ---
    "origin-evil-host": (
        lambda c, b: token_query(mint_token("alice"), origin=EVIL_ORIGIN),
        FORBIDDEN,
    ),
    "origin-null": (
        lambda c, b: token_query(mint_token("alice"), origin="null"),
        FORBIDDEN,
    ),
    "origin-sibling-subdomain": (
        lambda c, b: token_query(
            mint_token("alice"), origin="https://evil.example.com"
        ),
        FORBIDDEN,
    ),
    "origin-other-scheme": (
        lambda c, b: token_query(mint_token("alice"), origin="http://app.example.com"),
        FORBIDDEN,
    ),
    "origin-other-port": (
        lambda c, b: token_query(
            mint_token("alice"), origin="https://app.example.com:8443"
        ),
        FORBIDDEN,
    ),
    "origin-suffix-of-allowed": (
        lambda c, b: token_query(
            mint_token("alice"), origin="https://app.example.com.evil.test"
        ),
        FORBIDDEN,
    ),
    "origin-same-host-other-port": (
        lambda c, b: token_query(mint_token("alice"), origin="http://127.0.0.1:1"),
        FORBIDDEN,
    ),
    # A logged-in browser on a hostile page (cross-site WebSocket hijacking).
    "session-cookie-from-evil-origin": (
        lambda c, b: Attempt(
            "",
            {
                "additional_headers": {"Cookie": f"sessionid={c['session_key']}"},
                "origin": EVIL_ORIGIN,
            },
        ),
        FORBIDDEN,
    ),
    # --- check order (SPEC §2): syntax, authentication, identity and Origin ---
    "bad-user-id-and-no-token-is-syntax-first": (
        lambda c, b: Attempt("user_id=-bad"),
        BAD_REQUEST,
    ),
    "bad-last-seq-and-expired-token-is-syntax-first": (
        lambda c, b: Attempt(
            f"token={mint_token('alice', ttl_seconds=-1)}&user_id=alice&last_seq=-1"
        ),
        BAD_REQUEST,
    ),
    "no-token-and-evil-origin-is-auth-first": (
        lambda c, b: Attempt("user_id=alice", {"origin": EVIL_ORIGIN}),
        UNAUTHENTICATED,
    ),
    "expired-token-and-evil-origin-is-auth-first": (
        lambda c, b: token_query(
            mint_token("alice", ttl_seconds=-1), "alice", origin=EVIL_ORIGIN
        ),
        UNAUTHENTICATED,
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_refused_handshake_gets_error_frame_then_close_code(
    bridge: DaphneProcess, creds: dict[str, str], case: str
) -> None:
    build, expected = REFUSED[case]
    assert await refusal(bridge, build(creds, bridge)) == expected


def bearer(token: str) -> Attempt:
    return Attempt("", {"additional_headers": {"Authorization": f"Bearer {token}"}})


ACCEPTED: dict[str, tuple[Build, str]] = {
    "query-token-without-user-id": (
        lambda c, b: token_query(mint_token("alice")),
        "alice",
    ),
    "query-token-with-matching-user-id": (
        lambda c, b: token_query(mint_token("alice"), "alice"),
        "alice",
    ),
    "bearer-header": (lambda c, b: bearer(mint_token("alice")), "alice"),
    "subprotocol": (
        lambda c, b: Attempt(
            "", {"subprotocols": ["bridge.v1", f"token.{mint_token('alice')}"]}
        ),
        "alice",
    ),
    "account-api-key-as-query-token": (
        lambda c, b: token_query(c["account_key"]),
        "ci_bot",
    ),
    "account-api-key-as-bearer": (lambda c, b: bearer(c["account_key"]), "ci_bot"),
    "account-api-key-with-its-handle": (
        lambda c, b: token_query(c["account_key"], "ci_bot"),
        "ci_bot",
    ),
    "session-cookie": (
        lambda c, b: Attempt(
            "", {"additional_headers": {"Cookie": f"sessionid={c['session_key']}"}}
        ),
        "sess_user",
    ),
    "session-cookie-with-matching-user-id": (
        lambda c, b: Attempt(
            "user_id=sess_user",
            {"additional_headers": {"Cookie": f"sessionid={c['session_key']}"}},
        ),
        "sess_user",
    ),
    "allowed-origin": (
        lambda c, b: token_query(mint_token("alice"), origin=ALLOWED_ORIGIN),
        "alice",
    ),
    "no-origin-header": (lambda c, b: token_query(mint_token("alice")), "alice"),
    "same-origin": (
        lambda c, b: token_query(mint_token("alice"), origin=b.http),
        "alice",
    ),
    "session-cookie-same-origin": (
        lambda c, b: Attempt(
            "",
            {
                "additional_headers": {"Cookie": f"sessionid={c['session_key']}"},
                "origin": b.http,
            },
        ),
        "sess_user",
    ),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
async def test_accepted_handshake_connects_as_the_credentials_user(
    bridge: DaphneProcess, creds: dict[str, str], case: str
) -> None:
    build, user_id = ACCEPTED[case]
    assert await connected_as(bridge, build(creds, bridge)) == user_id


async def test_subprotocol_token_is_answered_with_bridge_v1_and_never_echoed(
    bridge: DaphneProcess,
) -> None:
    token = mint_token("alice")
    client = await Client.connect(
        f"{bridge.ws}/ws", subprotocols=["bridge.v1", f"token.{token}"]
    )
    try:
        assert client.connection.subprotocol == "bridge.v1"
        headers = client.connection.response.headers
        assert headers.get_all("Sec-WebSocket-Protocol") == ["bridge.v1"]
        assert token not in str(headers)
        assert (await client.receive())["user_id"] == "alice"
    finally:
        await client.close()


async def test_api_key_of_a_public_account_can_receive_its_pushes(
    bridge: DaphneProcess, creds: dict[str, str]
) -> None:
    """A bot connecting with its key is that account: pushes to it arrive."""
    client = await Client.connect(f"{bridge.ws}/ws?token={creds['account_key']}")
    try:
        assert (await client.receive())["user_id"] == "ci_bot"
        async with httpx.AsyncClient(timeout=10) as http:
            reply = await http.post(
                f"{bridge.http}/sse/push",
                json={"user_id": "ci_bot", "message": "for the bot"},
                headers={"Authorization": f"Bearer {creds['push_key']}"},
            )
        assert reply.status_code == 202, reply.text
        frame = await client.receive_type("message")
        assert (frame["to"], frame["data"]) == ("ci_bot", {"text": "for the bot"})
    finally:
        await client.close()


async def test_wildcard_allowed_hosts_does_not_admit_an_arbitrary_origin(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path: Path
) -> None:
    with running_daphnes(
        redis_server.url, tmp_path, 1, database=migrated_sqlite, ALLOWED_HOSTS="*"
    ) as (open_mode,):
        evil = Attempt("user_id=alice", {"origin": EVIL_ORIGIN})
        assert await refusal(open_mode, evil) == FORBIDDEN
        # The same server still serves clients that send no Origin (bots).
        assert await connected_as(open_mode, Attempt("user_id=alice")) == "alice"


async def test_tokens_and_api_keys_never_appear_in_the_log(
    bridge: DaphneProcess, creds: dict[str, str]
) -> None:
    token, expired = mint_token("alice"), mint_token("alice", ttl_seconds=-1)
    assert await connected_as(bridge, token_query(token)) == "alice"
    assert await connected_as(bridge, bearer(token)) == "alice"
    assert await refusal(bridge, token_query(expired)) == UNAUTHENTICATED
    assert await refusal(bridge, token_query(token, "bob")) == FORBIDDEN
    async with httpx.AsyncClient(timeout=10) as http:
        for key, status in [(creds["push_key"], 202), (creds["revoked_key"], 401)]:
            reply = await http.post(
                f"{bridge.http}/sse/push",
                json={"user_id": "alice", "message": "x"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert reply.status_code == status, reply.text
    log = bridge.log()
    assert "/sse/push" in log, "the requests are logged, their credentials are not"
    keys = [value for value in creds.values() if value.startswith("brk_")]
    for secret in [token, expired, creds["session_key"], *keys]:
        assert secret not in log
    for key in keys:
        # Nor the part after `brk_<prefix>_`, which is what makes a key secret.
        assert key.split("_", 2)[2] not in log
