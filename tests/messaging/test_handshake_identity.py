"""handshake.authenticate returns an Identity: the user id, the topics the
token grants (SPEC §8 "Tokens") and when it expires (SPEC §10). Only a signed
token grants topics and expires."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from accounts.keys import api_key_create
from accounts.models import PublicAccount
from accounts.tokens import token_issue
from messaging.realtime.handshake import (
    HandshakeRefused,
    Identity,
    authenticate,
    parse_handshake,
)


def scope(query: bytes = b"", **extra) -> dict:
    return {
        "type": "websocket",
        "path": "/ws",
        "query_string": query,
        "headers": [(b"host", b"localhost")],
        "subprotocols": [],
        **extra,
    }


def identify(query: bytes, **extra) -> Identity:
    connection_scope = scope(query, **extra)
    return async_to_sync(authenticate)(
        parse_handshake(connection_scope), connection_scope
    )


def test_a_token_with_topics_grants_them(settings):
    settings.BRIDGE_AUTH_MODE = "token"
    issued = token_issue(user_id="alice", topics=["room:42", "doc:*"])
    assert identify(f"token={issued.token}".encode()) == Identity(
        "alice", ("room:42", "doc:*"), issued.expires_at.timestamp()
    )


def test_a_token_without_topics_grants_none(settings):
    settings.BRIDGE_AUTH_MODE = "token"
    issued = token_issue(user_id="alice")
    assert identify(f"token={issued.token}".encode()) == Identity(
        "alice", (), issued.expires_at.timestamp()
    )


def test_open_mode_grants_nothing(settings):
    settings.BRIDGE_AUTH_MODE = "open"
    assert identify(b"user_id=alice") == Identity("alice", ())


@pytest.mark.django_db(transaction=True)
def test_a_public_accounts_api_key_grants_nothing(settings):
    settings.BRIDGE_AUTH_MODE = "token"
    account = PublicAccount.objects.create(handle="grant_bot")
    key = api_key_create(name="bot", account=account, permissions={"push"})
    assert identify(f"token={key.raw}".encode()) == Identity("grant_bot", ())


def test_a_token_for_another_user_is_still_refused(settings):
    settings.BRIDGE_AUTH_MODE = "token"
    token = token_issue(user_id="alice", topics=["room:1"]).token
    with pytest.raises(HandshakeRefused) as caught:
        identify(f"token={token}&user_id=bob".encode())
    assert caught.value.close_code == 4403


def test_a_session_grants_nothing(settings):
    from django.contrib.auth.models import User

    settings.BRIDGE_AUTH_MODE = "token"
    assert identify(b"", user=User(username="alice")) == Identity("alice", ())
