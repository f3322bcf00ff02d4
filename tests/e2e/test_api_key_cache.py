"""Revoking an API key reaches every process at once (accounts/key_cache.py):
two token-mode daphne processes A and B; B has verified a key (and cached it
for far longer than the test lasts); an operator revokes the key in A's admin;
B refuses the key within a second, for pushes and handshakes alike."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.credentials import django_shell, token_mode_env
from tests.support.daphne import DaphneProcess, crash_free_daphnes
from tests.support.ids import fresh_user_id
from tests.support.ws import Client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

PASSWORD = "revoker-password-1"
SETUP = f"""
import json
from django.contrib.auth import get_user_model
from accounts.keys import api_key_create
from accounts.models import PublicAccount

get_user_model().objects.create_superuser("revoker", password={PASSWORD!r})
bot, _ = PublicAccount.objects.get_or_create(handle="ci_bot")
created = api_key_create(name="bot", account=bot, permissions={{"push"}})
print(json.dumps({{"raw": created.raw, "pk": created.key.pk}}))
"""


@pytest.fixture(scope="module")
def cluster(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    # A TTL far past the test: only the announcement can make B refuse in time.
    with crash_free_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("key-cache"),
        2,
        database=migrated_sqlite,
        **token_mode_env(BRIDGE_API_KEY_CACHE_SECONDS="300"),
    ) as (a, b):
        yield a, b


async def push(http: httpx.AsyncClient, process: DaphneProcess, key: str):
    return await http.post(
        f"{process.http}/sse/push",
        json={"user_id": fresh_user_id(), "message": "hi"},
        headers={"Authorization": f"Bearer {key}"},
    )


async def handshake(process: DaphneProcess, key: str) -> dict:
    client = await Client.connect(f"{process.ws}/ws?token={key}")
    try:
        return await client.receive()
    finally:
        await client.close()


async def revoke_in_the_admin(process: DaphneProcess, pk: int) -> None:
    """What an operator does: log in to the admin, run "Revoke selected keys"."""
    async with httpx.AsyncClient(base_url=process.http, timeout=10) as admin:
        login = await admin.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        assert token, login.text
        logged_in = await admin.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token[1],
                "username": "revoker",
                "password": PASSWORD,
                "next": "/admin/",
            },
        )
        assert logged_in.status_code == 302, logged_in.text
        changelist = await admin.get("/admin/accounts/apikey/")
        token = re.search(
            r'name="csrfmiddlewaretoken" value="([^"]+)"', changelist.text
        )
        assert token, changelist.text
        revoked = await admin.post(
            "/admin/accounts/apikey/",
            data={
                "csrfmiddlewaretoken": token[1],
                "action": "revoke",
                "index": "0",
                "_selected_action": [str(pk)],
            },
        )
        assert revoked.status_code == 302, revoked.text


async def test_a_key_revoked_in_as_admin_is_refused_by_b_within_a_second(cluster, http):
    a, b = cluster
    key = django_shell(a.env, SETUP)
    for _ in range(2):  # B verifies the key, then serves it from its cache
        reply = await push(http, b, key["raw"])
        assert reply.status_code == 202, reply.text
    assert (await handshake(b, key["raw"]))["user_id"] == "ci_bot"

    await revoke_in_the_admin(a, key["pk"])
    revoked_at = time.monotonic()
    while True:
        reply = await push(http, b, key["raw"])
        if reply.status_code == 401:
            break
        assert reply.status_code == 202, reply.text
        assert time.monotonic() - revoked_at < 1.0, "B still accepts the key"
    assert reply.json()["error"] == "not_authenticated"
    refused = await handshake(b, key["raw"])
    assert (refused["type"], refused["code"]) == ("error", "unauthenticated")
    assert (await push(http, a, key["raw"])).status_code == 401
