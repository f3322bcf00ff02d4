"""API keys: shown once, stored hashed, revocable; `manage.py create_api_key` and
the admin (SPEC §4)."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.keys import (
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
)
from accounts.models import ApiKey, PublicAccount

pytestmark = pytest.mark.django_db

KEY_SHAPE = re.compile(r"^brk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$")


@pytest.fixture
def ci_bot() -> PublicAccount:
    account, _ = PublicAccount.objects.get_or_create(handle="ci_bot")
    return account


def secret_part(raw: str) -> str:
    return raw.split("_", 2)[2]


def test_created_key_has_the_documented_shape(ci_bot):
    raw = api_key_create(name="ci", account=ci_bot).raw
    assert KEY_SHAPE.match(raw), raw


def test_only_a_digest_of_the_key_is_stored(ci_bot):
    created = api_key_create(name="ci", account=ci_bot)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey WHERE id = %s", [created.key.pk])
        row = [str(value) for value in cursor.fetchone()]
    for value in row:
        assert created.raw not in value
        assert secret_part(created.raw) not in value
    stored = ApiKey.objects.get(pk=created.key.pk)
    assert re.fullmatch(r"[0-9a-f]{64}", stored.digest)
    assert created.raw.startswith(f"brk_{stored.prefix}_")


def test_two_keys_never_share_a_secret(ci_bot):
    first = api_key_create(name="a", account=ci_bot).raw
    second = api_key_create(name="b", account=ci_bot).raw
    assert secret_part(first) != secret_part(second)
    assert first.split("_")[1] != second.split("_")[1]


def test_the_right_key_authenticates_as_its_owner_with_its_permissions(ci_bot):
    created = api_key_create(
        name="ci", account=ci_bot, permissions={"push", "broadcast"}
    )
    key = api_key_authenticate(created.raw)
    assert key is not None and key.pk == created.key.pk
    assert key.owner == "ci_bot"
    assert key.permissions == {"push", "broadcast"}


def test_a_service_key_authenticates_without_an_account():
    created = api_key_create(name="deploy", service="deployer")
    key = api_key_authenticate(created.raw)
    assert key is not None and key.account is None
    assert key.owner == "deployer"


def test_wrong_secret_with_a_real_prefix_is_refused(ci_bot):
    raw = api_key_create(name="ci", account=ci_bot).raw
    prefix = raw.split("_")[1]
    assert api_key_authenticate(f"brk_{prefix}_" + "A" * 43) is None
    assert api_key_authenticate(raw[:-1]) is None
    assert api_key_authenticate(raw + "A") is None


@pytest.mark.parametrize(
    "raw",
    ["", "brk_", "brk_12345678_", "nope", "Bearer brk_x", "brk_zzzzzzzz_" + "a" * 43],
)
def test_anything_that_is_not_a_live_key_is_refused(raw):
    assert api_key_authenticate(raw) is None


def test_revoked_key_is_refused_at_once(ci_bot):
    created = api_key_create(name="ci", account=ci_bot)
    api_key_revoke(key=created.key)
    assert api_key_authenticate(created.raw) is None


def test_revoking_twice_keeps_the_first_revocation_time(ci_bot):
    created = api_key_create(name="ci", account=ci_bot)
    api_key_revoke(key=created.key)
    first = ApiKey.objects.get(pk=created.key.pk).revoked_at
    api_key_revoke(key=ApiKey.objects.get(pk=created.key.pk))
    assert ApiKey.objects.get(pk=created.key.pk).revoked_at == first


def test_key_of_a_deactivated_account_is_refused(ci_bot):
    created = api_key_create(name="ci", account=ci_bot)
    ci_bot.is_active = False
    ci_bot.save()
    assert api_key_authenticate(created.raw) is None


def test_key_made_under_a_rotated_secret_key_works_only_from_the_fallbacks(ci_bot):
    old = "the-previous-secret-key-" + "z" * 40
    with override_settings(SECRET_KEY=old):
        raw = api_key_create(name="ci", account=ci_bot).raw
    assert api_key_authenticate(raw) is None
    with override_settings(SECRET_KEY_FALLBACKS=[old]):
        assert api_key_authenticate(raw) is not None


def test_unknown_permission_is_refused(ci_bot):
    with pytest.raises(ValueError, match="admin"):
        api_key_create(name="ci", account=ci_bot, permissions={"push", "admin"})


def test_default_permission_is_push_only(ci_bot):
    assert api_key_create(name="ci", account=ci_bot).key.permissions == {"push"}


def test_a_key_belongs_to_exactly_one_account_or_service(ci_bot):
    with pytest.raises(ValidationError):
        api_key_create(name="both", account=ci_bot, service="deployer")
    with pytest.raises(ValidationError):
        api_key_create(name="neither")
    assert not ApiKey.objects.exists()


def updates(queries: CaptureQueriesContext) -> int:
    return sum(q["sql"].lstrip().upper().startswith("UPDATE") for q in queries)


def test_last_used_at_is_written_at_most_once_a_minute(ci_bot):
    raw = api_key_create(name="ci", account=ci_bot).raw
    with CaptureQueriesContext(connection) as first:
        assert api_key_authenticate(raw) is not None
    with CaptureQueriesContext(connection) as second:
        assert api_key_authenticate(raw) is not None
    assert (updates(first), updates(second)) == (1, 0)
    used = ApiKey.objects.get().last_used_at
    assert used is not None
    assert timezone.now() - used < timedelta(seconds=10)


def test_last_used_at_is_written_again_after_a_minute(ci_bot):
    raw = api_key_create(name="ci", account=ci_bot).raw
    api_key_authenticate(raw)
    ApiKey.objects.update(last_used_at=timezone.now() - timedelta(seconds=61))
    with CaptureQueriesContext(connection) as queries:
        assert api_key_authenticate(raw) is not None
    assert updates(queries) == 1
    assert timezone.now() - ApiKey.objects.get().last_used_at < timedelta(seconds=10)


def test_refused_keys_do_not_touch_last_used_at(ci_bot):
    created = api_key_create(name="ci", account=ci_bot)
    api_key_revoke(key=created.key)
    with CaptureQueriesContext(connection) as queries:
        assert api_key_authenticate(created.raw) is None
        assert api_key_authenticate(created.raw[:-1] + "x") is None
    assert updates(queries) == 0


# --- manage.py create_api_key -----------------------------------------------------


def create_api_key(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_api_key_prints_the_key_alone_on_its_last_line(ci_bot):
    lines = create_api_key("--owner", "ci_bot", "--perm", "push", "--perm", "sender")
    raw = lines[-1]
    assert KEY_SHAPE.match(raw), lines
    key = api_key_authenticate(raw)
    assert key is not None
    assert key.owner == "ci_bot"
    assert key.permissions == {"push", "sender"}
    assert raw not in "\n".join(lines[:-1])


def test_create_api_key_for_a_service_defaults_to_push(ci_bot):
    key = api_key_authenticate(create_api_key("--service", "deployer")[-1])
    assert key is not None
    assert (key.account, key.service, key.permissions) == (None, "deployer", {"push"})


@pytest.mark.parametrize(
    "args",
    [
        ["--owner", "no_such_bot"],
        ["--owner", "ci_bot", "--perm", "admin"],
        ["--owner", "ci_bot", "--service", "deployer"],
        [],
    ],
)
def test_create_api_key_refuses_bad_input_with_command_error(ci_bot, args):
    with pytest.raises(CommandError):
        create_api_key(*args)
    assert not ApiKey.objects.exists()


# --- the admin ----------------------------------------------------------------------


def test_key_added_in_the_admin_is_shown_once_and_works(
    admin_client: Client, ci_bot
) -> None:
    response = admin_client.post(
        "/admin/accounts/apikey/add/",
        {"name": "from admin", "account": ci_bot.pk, "service": "", "can_push": "on"},
    )
    # Shown on the page that answers the form, which no cache may keep.
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    shown = re.findall(r"brk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", response.content.decode())
    assert len(shown) == 1
    key = api_key_authenticate(shown[0])
    assert key is not None and key.permissions == {"push"}
    page = admin_client.get(f"/admin/accounts/apikey/{key.pk}/change/")
    assert shown[0] not in page.content.decode()
    assert secret_part(shown[0]) not in page.content.decode()


def test_key_added_in_the_admin_never_travels_in_a_cookie_or_the_session(
    admin_client: Client, ci_bot
) -> None:
    response = admin_client.post(
        "/admin/accounts/apikey/add/",
        {"name": "cookie", "account": ci_bot.pk, "service": "", "can_push": "on"},
    )
    key = ApiKey.objects.get(name="cookie")
    secret = f"brk_{key.prefix}_"
    # The messages cookie is signed and compressed: decode it to look inside.
    for morsel in response.cookies.values():
        stored = CookieStorage(response.wsgi_request)._decode(morsel.value)
        assert secret not in str(stored) + morsel.value, morsel.key
    for value in admin_client.session.values():
        assert secret not in str(value)
    assert not [m for m in get_messages(response.wsgi_request) if secret in str(m)]


def test_revoke_action_in_the_admin_revokes_the_key(admin_client: Client, ci_bot):
    created = api_key_create(name="ci", account=ci_bot)
    admin_client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke", "_selected_action": [created.key.pk]},
    )
    assert api_key_authenticate(created.raw) is None
