"""SECRET_KEY_FALLBACKS does what docs/security.md ("Rotating SECRET_KEY") says
for the parts tests/accounts/test_tokens.py and test_api_keys.py do not cover:
it is read from the environment, admin sessions survive a rotation through it
(and are re-keyed), and an API key's stored hash is not recomputed."""

from __future__ import annotations

import pytest
from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.test import Client, override_settings

from accounts.keys import api_key_authenticate, api_key_create
from accounts.models import ApiKey
from tests.support.credentials import manage
from tests.support.daphne import server_env

OLD = "the-previous-secret-key-" + "o" * 40
NEW = "the-current-secret-key-" + "n" * 40


def test_the_fallbacks_are_read_from_the_environment(redis_server, tmp_path):
    env = server_env(
        redis_server.url,
        f"sqlite:///{tmp_path / 'rotation.sqlite3'}",
        SECRET_KEY_FALLBACKS=f"{OLD}, second-old-key",
    )
    code = "from django.conf import settings; print(settings.SECRET_KEY_FALLBACKS)"
    done = manage(env, "shell", "--no-imports", "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str([OLD, "second-old-key"])


@pytest.mark.django_db
def test_an_admin_session_survives_a_rotation_only_through_the_fallback():
    get_user_model().objects.create_superuser("root", password="pw-rotation-1")
    client = Client()
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
        assert client.login(username="root", password="pw-rotation-1")
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
        assert client.get("/admin/").status_code == 302  # logged out
    client = Client()
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
        assert client.login(username="root", password="pw-rotation-1")
        old_session = client.session.session_key
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        assert client.get("/admin/").status_code == 200
        # Re-keyed: a new session key, and a hash under the new secret.
        session = client.session
        user = get_user_model().objects.get(username="root")
        assert session.session_key != old_session
        assert session[HASH_SESSION_KEY] == user.get_session_auth_hash()
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
        assert client.get("/admin/").status_code == 200  # no longer needs the old key


@pytest.mark.django_db
def test_an_api_key_hash_is_not_recomputed_through_the_fallback():
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
        created = api_key_create(name="ci", service="deployer")
    stored = created.key.digest
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        assert api_key_authenticate(created.raw) is not None
    assert ApiKey.objects.get(pk=created.key.pk).digest == stored
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
        assert api_key_authenticate(created.raw) is None
