"""Credentials for token-mode tests against real daphne processes (SPEC §4).

Tokens are signed with SECRET_KEY only, so the test process mints them with the
server's key. API keys, users and sessions live in the server's database, so
they are made there by `manage.py` subprocesses run with the server's env.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from django.test import override_settings

from accounts.tokens import token_issue
from tests.support.daphne import REPO

# The SECRET_KEY every token-mode daphne of the suite runs with.
SERVER_SECRET_KEY = "bridge-tests-server-secret-key-0123456789-abcdefghijklmnop"
MANAGE_TIMEOUT = 60.0


def token_mode_env(**overrides: str) -> dict[str, str]:
    """daphne env overrides for production authentication with a known key."""
    return {"BRIDGE_AUTH_MODE": "token", "SECRET_KEY": SERVER_SECRET_KEY, **overrides}


def mint_token(
    user_id: str,
    *,
    ttl_seconds: int | None = None,
    secret_key: str = SERVER_SECRET_KEY,
    topics: Sequence[str] = (),
) -> str:
    """A token as `POST /api/tokens` on a server with `secret_key` would mint it,
    granting `topics` (SPEC §8)."""
    with override_settings(SECRET_KEY=secret_key, SECRET_KEY_FALLBACKS=[]):
        return token_issue(
            user_id=user_id, ttl_seconds=ttl_seconds, topics=topics
        ).token


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python manage.py <args>` with a server's env; output captured as text."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=MANAGE_TIMEOUT,
    )


def django_shell(env: dict[str, str], code: str) -> Any:
    """Run `code` in `manage.py shell` against a server's database; the code
    prints one JSON document on its last line, which is returned decoded."""
    done = manage(env, "shell", "--no-imports", "-c", code)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# Creates, in a server's database, what the handshake tests authenticate with.
CREATE_CREDENTIALS = """
import json
from django.contrib.auth import (
    BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model,
)
from django.contrib.sessions.backends.db import SessionStore
from accounts.keys import api_key_create, api_key_revoke
from accounts.models import PublicAccount

def account(handle, active=True):
    found, _ = PublicAccount.objects.get_or_create(handle=handle)
    found.is_active = active
    found.save()
    return found

def session_for(username):
    user = get_user_model().objects.create_user(username, password="unused-pw-1")
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key

bot = account("ci_bot")
revoked = api_key_create(name="revoked", account=bot)
api_key_revoke(key=revoked.key)
print(json.dumps({
    "account_key": api_key_create(name="bot", account=bot).raw,
    "service_key": api_key_create(name="svc", service="deployer").raw,
    "revoked_key": revoked.raw,
    "inactive_account_key": api_key_create(
        name="gone", account=account("retired_bot", active=False)
    ).raw,
    "push_key": api_key_create(
        name="pusher", service="builds", permissions={"push"}
    ).raw,
    "session_user": "sess_user",
    "session_key": session_for("sess_user"),
}))
"""


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for an API key."""
    return {"Authorization": f"Bearer {key}"}
