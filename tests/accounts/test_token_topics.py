"""Tokens that grant topics (SPEC §8 "Tokens"): POST /api/tokens with
`topics`, `manage.py issue_token --topic`, and what a token claims."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core import signing
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.keys import api_key_create
from accounts.tokens import (
    MAX_TOPIC_GRANTS,
    InvalidToken,
    TokenClaims,
    _signer,
    token_claims,
    token_issue,
    token_user_id,
)

TOKENS = "/api/tokens"
TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_.-]+$")


@pytest.fixture
def minter(db) -> str:
    key = api_key_create(name="minter", service="svc", permissions={"issue_tokens"})
    return key.raw


def mint(client: Client, body: object, key: str):
    return client.post(
        TOKENS,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def assert_invalid(response) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}
    assert body["error"] == "invalid"
    return body["detail"]


# --- tokens.py ----------------------------------------------------------------------


def test_a_token_without_topics_claims_none_and_is_unchanged_in_shape():
    issued = token_issue(user_id="alice")
    token = issued.token
    expires = issued.expires_at.timestamp()
    assert token_claims(token) == TokenClaims("alice", (), expires)
    # Exactly the pre-topics payload: old tokens and new ones look alike.
    assert set(_signer().unsign_object(token)) == {"u", "e"}


def test_a_token_issued_before_topics_is_still_valid():
    import time

    expires = int(time.time()) + 60
    old = _signer().sign_object({"u": "alice", "e": expires})
    assert token_claims(old) == TokenClaims("alice", (), float(expires))
    assert token_user_id(old) == "alice"


def test_a_token_carries_its_topic_grants_in_order_without_duplicates():
    issued = token_issue(user_id="alice", topics=["room:42", "doc:*", "room:42"])
    assert issued.topics == ("room:42", "doc:*")
    claims = token_claims(issued.token)
    assert claims == TokenClaims(
        "alice", ("room:42", "doc:*"), issued.expires_at.timestamp()
    )
    assert TOKEN_CHARS.match(issued.token)


def test_a_hundred_grants_stay_compact_and_header_safe():
    topics = [f"room:a@b=c.{n}" for n in range(MAX_TOPIC_GRANTS)]
    token = token_issue(user_id="alice", topics=topics).token
    assert TOKEN_CHARS.match(token)
    assert len(token) < 1000
    assert token_claims(token).topics == tuple(topics)


@pytest.mark.parametrize(
    "grant", ["room", "user:alice", "user:*", "Room:x", "room:a b", "*", "room:", 7]
)
def test_issuing_a_bad_grant_is_refused(grant):
    with pytest.raises(ValueError):
        token_issue(user_id="alice", topics=[grant])


def test_issuing_more_than_the_maximum_grants_is_refused():
    with pytest.raises(ValueError):
        token_issue(
            user_id="alice", topics=[f"room:{n}" for n in range(MAX_TOPIC_GRANTS + 1)]
        )


@pytest.mark.parametrize("grants", ["room:1", ["user:bob"], [1], {"a": 1}])
def test_a_signed_payload_with_malformed_grants_is_an_invalid_token(grants):
    import time

    token = _signer().sign_object(
        {"u": "alice", "e": int(time.time()) + 60, "t": grants}
    )
    with pytest.raises(InvalidToken):
        token_claims(token)


def test_a_tampered_compressed_token_is_invalid():
    token = token_issue(user_id="alice", topics=["room:1", "room:2"]).token
    with pytest.raises(InvalidToken):
        token_claims(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
    with pytest.raises(InvalidToken):
        token_claims("." + signing.b64_encode(b"not zlib").decode() + ".sig")


# --- POST /api/tokens ---------------------------------------------------------------


def test_minting_with_topics_gives_a_token_granting_them(client, minter):
    response = mint(
        client, {"user_id": "alice", "topics": ["room:42", "doc:*"]}, minter
    )
    assert response.status_code == 201, response.content
    assert set(response.json()) == {"token", "expires_at"}
    claims = token_claims(response.json()["token"])
    assert (claims.user_id, claims.topics) == ("alice", ("room:42", "doc:*"))


def test_minting_with_an_empty_topic_list_grants_nothing(client, minter):
    response = mint(client, {"user_id": "alice", "topics": []}, minter)
    assert response.status_code == 201, response.content
    assert token_claims(response.json()["token"]).topics == ()


@pytest.mark.parametrize(
    "topics",
    [
        ["room"],
        ["user:alice"],
        ["room:ok", "Bad:x"],
        ["room:a b"],
        ["room:*x"],
        [7],
        [None],
        "room:42",
        {"room": 1},
    ],
)
def test_minting_with_a_bad_topic_is_400_naming_the_field(client, minter, topics):
    detail = assert_invalid(
        mint(client, {"user_id": "alice", "topics": topics}, minter)
    )
    assert list(detail) == ["topics"]


def test_minting_with_more_than_100_topics_is_400(client, minter):
    topics = [f"room:{n}" for n in range(MAX_TOPIC_GRANTS + 1)]
    detail = assert_invalid(
        mint(client, {"user_id": "alice", "topics": topics}, minter)
    )
    assert list(detail) == ["topics"]


def test_minting_exactly_100_topics_is_accepted(client, minter):
    topics = [f"room:{n}" for n in range(MAX_TOPIC_GRANTS)]
    response = mint(client, {"user_id": "alice", "topics": topics}, minter)
    assert response.status_code == 201, response.content
    assert len(token_claims(response.json()["token"]).topics) == MAX_TOPIC_GRANTS


# --- manage.py issue_token --topic --------------------------------------------------


def test_issue_token_command_grants_repeated_topics():
    out = io.StringIO()
    call_command(
        "issue_token",
        "alice",
        "--topic",
        "room:1",
        "--topic",
        "doc:*",
        stdout=out,
        stderr=io.StringIO(),
    )
    assert token_claims(out.getvalue().strip()).topics == ("room:1", "doc:*")


def test_issue_token_command_refuses_a_bad_topic():
    with pytest.raises(CommandError, match="topic"):
        call_command(
            "issue_token", "alice", "--topic", "user:bob", stderr=io.StringIO()
        )
