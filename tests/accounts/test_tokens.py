"""Signed, expiring WebSocket tokens and `manage.py issue_token` (SPEC §4)."""

from __future__ import annotations

import io
import re
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts.tokens import InvalidToken, token_issue, token_user_id

TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_.-]+$")


def test_token_names_the_user_it_was_issued_for():
    issued = token_issue(user_id="alice")
    assert issued.user_id == "alice"
    assert token_user_id(issued.token) == "alice"


@pytest.mark.parametrize(
    "user_id", ["a", "Alice.B-c_d", "ci_bot", "7", "z" * 64, "x-", "x."]
)
def test_tokens_use_only_url_and_header_safe_characters(user_id):
    token = token_issue(user_id=user_id).token
    assert TOKEN_CHARS.match(token), token
    assert token_user_id(token) == user_id


def test_tokens_for_different_users_differ():
    assert token_issue(user_id="alice").token != token_issue(user_id="bob").token


@pytest.mark.parametrize("user_id", ["", "-alice", "al ice", "a" * 65, "é"])
def test_issuing_for_an_invalid_user_id_is_refused(user_id):
    with pytest.raises(ValueError):
        token_issue(user_id=user_id)


def test_expires_at_is_ttl_seconds_from_now(settings):
    settings.BRIDGE_TOKEN_TTL = 120
    before = time.time()
    issued = token_issue(user_id="alice")
    assert before + 119 <= issued.expires_at.timestamp() <= time.time() + 121
    assert issued.expires_at.tzinfo is not None
    custom = token_issue(user_id="alice", ttl_seconds=10)
    assert custom.expires_at.timestamp() <= time.time() + 11


def test_expired_token_is_refused_as_expired():
    token = token_issue(user_id="alice", ttl_seconds=-1).token
    with pytest.raises(InvalidToken, match="expired"):
        token_user_id(token)


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move the tokens module's clock `seconds` ahead."""
    now = time.time()
    monkeypatch.setattr("accounts.tokens.time.time", lambda: now + seconds)


def test_token_works_until_its_ttl_has_passed(monkeypatch):
    token = token_issue(user_id="alice", ttl_seconds=60).token
    later(monkeypatch, 58)
    assert token_user_id(token) == "alice"
    later(monkeypatch, 61)
    with pytest.raises(InvalidToken, match="expired"):
        token_user_id(token)


def test_default_ttl_is_bridge_token_ttl(monkeypatch, settings):
    settings.BRIDGE_TOKEN_TTL = 300
    token = token_issue(user_id="alice").token
    later(monkeypatch, 298)
    assert token_user_id(token) == "alice"
    later(monkeypatch, 301)
    with pytest.raises(InvalidToken):
        token_user_id(token)


def test_token_signed_with_another_secret_key_is_refused():
    with override_settings(SECRET_KEY="another-secret-key-" + "x" * 40):
        foreign = token_issue(user_id="alice").token
    with pytest.raises(InvalidToken):
        token_user_id(foreign)


def test_token_from_before_a_key_rotation_still_works_from_the_fallbacks():
    old_key = "the-previous-secret-key-" + "y" * 40
    with override_settings(SECRET_KEY=old_key):
        token = token_issue(user_id="alice").token
    with override_settings(SECRET_KEY_FALLBACKS=[old_key]):
        assert token_user_id(token) == "alice"


def test_payload_swapped_under_another_tokens_signature_is_refused():
    mallory_payload = token_issue(user_id="mallory").token.rsplit(".", 1)[0]
    alice_signature = token_issue(user_id="alice").token.rsplit(".", 1)[1]
    with pytest.raises(InvalidToken):
        token_user_id(f"{mallory_payload}.{alice_signature}")


def test_every_single_character_change_is_refused():
    token = token_issue(user_id="alice").token
    for index, char in enumerate(token):
        replacement = "A" if char != "A" else "B"
        tampered = token[:index] + replacement + token[index + 1 :]
        with pytest.raises(InvalidToken):
            token_user_id(tampered)


@pytest.mark.parametrize(
    "token",
    ["", ".", "..", "abc", "abc.def", "a" * 10_000, "é.é", "\x00", "brk_x_y"],
)
def test_malformed_tokens_are_refused_with_invalid_token(token):
    with pytest.raises(InvalidToken):
        token_user_id(token)


# --- manage.py issue_token ------------------------------------------------------


def test_issue_token_prints_a_valid_token_alone_on_stdout():
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("issue_token", "alice", stdout=stdout, stderr=stderr)
    token = stdout.getvalue().strip()
    assert "\n" not in token
    assert token_user_id(token) == "alice"
    # The expiry goes to stderr, so `$(manage.py issue_token alice)` is the token.
    assert "expires at" in stderr.getvalue()


def test_issue_token_honours_ttl(monkeypatch):
    stdout = io.StringIO()
    call_command(
        "issue_token", "alice", "--ttl", "30", stdout=stdout, stderr=io.StringIO()
    )
    token = stdout.getvalue().strip()
    assert token_user_id(token) == "alice"
    later(monkeypatch, 31)
    with pytest.raises(InvalidToken):
        token_user_id(token)


@pytest.mark.parametrize("args", [["-alice"], ["al ice"], ["alice", "--ttl", "0"]])
def test_issue_token_refuses_bad_input_with_command_error(args):
    with pytest.raises(CommandError):
        call_command("issue_token", *args, stdout=io.StringIO(), stderr=io.StringIO())


def test_expires_at_is_utc():
    assert token_issue(user_id="alice").expires_at.utcoffset() == timedelta(0)
