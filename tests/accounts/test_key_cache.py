"""The per-process cache of verified API keys (accounts/key_cache.py) and its
invalidation (accounts/key_changes.py): a hit costs no query; revocation and
deactivation refuse at once in this process and, through Redis, in the others;
entries expire; bad keys are never cached."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import AsyncIterator

import pytest
import redis
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from accounts import key_cache, key_changes, services
from accounts.authentication import ApiKeyAuthentication, Caller
from accounts.key_cache import (
    VerifiedKey,
    authenticate_api_key,
    authenticate_api_key_blocking,
)
from accounts.keys import api_key_create, api_key_revoke
from accounts.models import ApiKey, PublicAccount
from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.polling import eventually

pytestmark = pytest.mark.django_db


@pytest.fixture
def ci_bot() -> PublicAccount:
    account, _ = PublicAccount.objects.get_or_create(handle="ci_bot")
    return account


@pytest.fixture
def raw(ci_bot) -> str:
    return api_key_create(name="ci", account=ci_bot, permissions={"push"}).raw


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(key_cache, "clock", fake)
    return fake


def test_a_verified_key_says_who_and_what(raw, ci_bot):
    verified = authenticate_api_key_blocking(raw)
    key = ApiKey.objects.get()
    assert verified == VerifiedKey(key.pk, frozenset({"push"}), "ci_bot")
    service = api_key_create(name="svc", service="deployer", permissions={"ops"})
    assert authenticate_api_key_blocking(service.raw) == VerifiedKey(
        service.key.pk, frozenset({"ops"}), None
    )


def test_a_cached_key_is_served_without_a_query(raw, django_assert_num_queries):
    with django_assert_num_queries(2):  # the lookup, and last_used_at
        first = authenticate_api_key_blocking(raw)
    with django_assert_num_queries(0):
        assert authenticate_api_key_blocking(raw) == first
    assert key_cache.size() == 1


@override_settings(BRIDGE_API_KEY_CACHE_SECONDS=0)
def test_a_ttl_of_zero_looks_every_request_up(raw, django_assert_num_queries):
    authenticate_api_key_blocking(raw)
    for _ in range(3):
        with django_assert_num_queries(1):
            assert authenticate_api_key_blocking(raw) is not None
    assert key_cache.size() == 0


def test_an_entry_expires_after_the_ttl(
    raw, clock, settings, django_assert_num_queries
):
    settings.BRIDGE_API_KEY_CACHE_SECONDS = 10
    authenticate_api_key_blocking(raw)  # cached until 1010
    clock.now = 1009.9
    with django_assert_num_queries(0):
        assert authenticate_api_key_blocking(raw) is not None
    clock.now = 1010.0
    with django_assert_num_queries(1):  # looked up again (last_used_at is fresh)
        assert authenticate_api_key_blocking(raw) is not None
    # Revoked behind the cache's back (no signal): served until it expires.
    ApiKey.objects.update(revoked_at=timezone.now())
    clock.now = 1019.9
    assert authenticate_api_key_blocking(raw) is not None
    clock.now = 1020.0
    assert authenticate_api_key_blocking(raw) is None


def test_revoking_a_cached_key_refuses_it_at_once(raw):
    assert authenticate_api_key_blocking(raw) is not None
    api_key_revoke(key=ApiKey.objects.get())
    assert authenticate_api_key_blocking(raw) is None


def test_revoking_in_the_admin_refuses_a_cached_key_at_once(raw, admin_client):
    assert authenticate_api_key_blocking(raw) is not None
    admin_client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke", "_selected_action": [ApiKey.objects.get().pk]},
    )
    assert authenticate_api_key_blocking(raw) is None


def test_editing_a_cached_key_takes_effect_at_once(raw):
    assert authenticate_api_key_blocking(raw).permissions == {"push"}
    key = ApiKey.objects.get()
    key.can_broadcast = True
    key.save()
    assert authenticate_api_key_blocking(raw).permissions == {"push", "broadcast"}


def test_deactivating_the_account_refuses_its_cached_keys_at_once(raw, ci_bot):
    assert authenticate_api_key_blocking(raw) is not None
    ci_bot.is_active = False
    ci_bot.save()
    assert authenticate_api_key_blocking(raw) is None


def test_deactivating_in_bulk_refuses_cached_keys_at_once(raw, ci_bot):
    # The admin's action is a queryset update, which sends no post_save.
    assert authenticate_api_key_blocking(raw) is not None
    services.public_accounts_set_active(
        accounts=PublicAccount.objects.filter(pk=ci_bot.pk), active=False
    )
    assert authenticate_api_key_blocking(raw) is None


def test_deleting_a_cached_key_refuses_it_at_once(raw):
    assert authenticate_api_key_blocking(raw) is not None
    ApiKey.objects.get().delete()
    assert authenticate_api_key_blocking(raw) is None


def test_a_wrong_secret_with_a_cached_keys_prefix_is_refused(raw):
    assert authenticate_api_key_blocking(raw) is not None
    prefix = raw.split("_")[1]
    assert authenticate_api_key_blocking(f"brk_{prefix}_" + "A" * 43) is None
    assert (
        authenticate_api_key_blocking(raw[:-1] + ("B" if raw[-1] != "B" else "C"))
        is None
    )
    assert key_cache.size() == 1


def test_a_wrong_secret_is_refused_however_often_it_is_tried(raw):
    prefix = raw.split("_")[1]
    wrong = f"brk_{prefix}_" + "A" * 43
    for _ in range(3):
        assert authenticate_api_key_blocking(wrong) is None
    assert key_cache.size() == 0


@pytest.mark.parametrize(
    "bad", ["", "brk_", "nope", "brk_zzzzzzzz_" + "a" * 43, "brk_00000000_" + "A" * 43]
)
def test_malformed_and_unknown_keys_are_refused_and_never_cached(bad):
    assert authenticate_api_key_blocking(bad) is None
    assert key_cache.size() == 0


def test_a_malformed_key_costs_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert authenticate_api_key_blocking("brk_zzzzzzzz_" + "a" * 43) is None


def test_the_cache_holds_at_most_max_entries_dropping_the_oldest(
    ci_bot, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(key_cache, "MAX_ENTRIES", 3)
    raws = [api_key_create(name=f"k{n}", account=ci_bot).raw for n in range(5)]
    for each in raws:
        authenticate_api_key_blocking(each)
    assert key_cache.size() == 3
    with django_assert_num_queries(0):
        for each in raws[2:]:
            assert authenticate_api_key_blocking(each) is not None


def test_a_lookup_overtaken_by_a_change_is_not_cached(raw, monkeypatch):
    """A revocation landing while a lookup runs must not leave the lookup's
    (older) answer in the cache."""
    real = key_cache.api_key_authenticate

    def lookup_then_change(value: str):
        found = real(value)
        key_cache.clear()  # as a revocation's signal would, meanwhile
        return found

    monkeypatch.setattr(key_cache, "api_key_authenticate", lookup_then_change)
    assert authenticate_api_key_blocking(raw) is not None
    assert key_cache.size() == 0


# --- the async variant ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_async_variant_looks_up_once_then_stays_on_the_loop(
    monkeypatch,
):
    from asgiref.sync import sync_to_async

    from messaging import ws_database

    created = await sync_to_async(api_key_create)(name="svc", service="builds")
    first = await authenticate_api_key(created.raw)
    assert first == VerifiedKey(created.key.pk, frozenset({"push"}), None)

    def no_thread_hop(*args, **kwargs):
        raise AssertionError("a cached key went to the database pool")

    monkeypatch.setattr(ws_database, "run_db", no_thread_hop)
    assert await authenticate_api_key(created.raw) == first
    assert await authenticate_api_key("brk_zzzzzzzz_" + "a" * 43) is None


# --- the DRF authenticator ------------------------------------------------------


@pytest.fixture
def token_mode(settings) -> None:
    settings.BRIDGE_AUTH_MODE = "token"


def push(client: Client, authorization: str):
    return client.post(
        "/sse/push",
        data=json.dumps({"user_id": "alice", "message": "hi"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=authorization,
    )


@pytest.mark.usefixtures("token_mode")
@pytest.mark.parametrize(
    "authorization",
    ["Bearer brk_00000000_" + "A" * 43, "Bearer brk_nothex!!_" + "A" * 43, "Bearer x"],
    ids=["unknown-prefix", "malformed", "not-a-key"],
)
def test_bad_keys_get_a_401_json_error_and_grow_no_cache(authorization):
    response = push(Client(raise_request_exception=False), authorization)
    assert response.status_code == 401, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}
    assert body["error"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert key_cache.size() == 0


@pytest.mark.usefixtures("token_mode")
def test_a_revoked_cached_key_gets_401_at_once(raw):
    client = Client(raise_request_exception=False)
    assert push(client, f"Bearer {raw}").status_code == 202
    assert key_cache.size() == 1
    api_key_revoke(key=ApiKey.objects.get())
    assert push(client, f"Bearer {raw}").status_code == 401


def request_with(authorization: str):
    return RequestFactory().post("/sse/push", HTTP_AUTHORIZATION=authorization)


@pytest.mark.django_db(transaction=True)
async def test_aauthenticate_builds_the_same_caller_as_authenticate():
    from asgiref.sync import sync_to_async

    account, _ = await PublicAccount.objects.aget_or_create(handle="ci_bot")
    created = await sync_to_async(api_key_create)(name="ci", account=account)
    request = request_with(f"Bearer {created.raw}")
    auth = ApiKeyAuthentication()
    sync = await sync_to_async(auth.authenticate)(request)
    assert await auth.aauthenticate(request) == sync
    caller, verified = sync
    assert caller == Caller(frozenset({"push"}), "ci_bot", created.key.pk)
    assert verified.key_id == created.key.pk
    assert await auth.aauthenticate(request_with("Basic abc")) is None


# --- across processes: the announcement and the listener -----------------------


@pytest.mark.django_db(transaction=True)
def test_a_committed_revocation_is_announced_on_redis(raw, redis_server):
    listener = redis.Redis.from_url(redis_server.url).pubsub()
    listener.subscribe(key_changes.CHANNEL)
    try:
        assert listener.get_message(timeout=2)["type"] == "subscribe"
        api_key_revoke(key=ApiKey.objects.get())
        message = listener.get_message(timeout=2)
        assert message is not None, "nothing announced"
        assert (message["type"], message["channel"]) == (
            "message",
            key_changes.CHANNEL.encode(),
        )
    finally:
        listener.close()


@pytest.mark.django_db(transaction=True)
def test_revoking_with_redis_down_still_revokes(raw, caplog):
    assert authenticate_api_key_blocking(raw) is not None
    with (
        override_settings(REDIS_URL="redis://127.0.0.1:1/0"),
        caplog.at_level(logging.WARNING, logger="accounts.key_changes"),
    ):
        api_key_revoke(key=ApiKey.objects.get())
    assert ApiKey.objects.get().revoked_at is not None
    assert authenticate_api_key_blocking(raw) is None
    assert "not announced" in caplog.text


def warm(n: int = 1) -> None:
    """Put `n` entries in the cache, as verified keys would."""
    for i in range(n):
        key_cache._remember(
            bytes([i]) * 32, key_cache._generation, VerifiedKey(i, frozenset(), None)
        )


@pytest.fixture
async def own_redis() -> AsyncIterator[EmbeddedRedis]:
    """A Redis of the test's own, to stop and start without disturbing others."""
    server = EmbeddedRedis().start()
    yield server
    if server.process is not None:
        server.stop()


@pytest.fixture
async def listening(own_redis: EmbeddedRedis) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(key_changes.listen(own_redis.url))
    await subscribed(own_redis)
    yield task
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def subscribed(server: EmbeddedRedis) -> None:
    client = redis.asyncio.Redis.from_url(server.url)

    async def one_subscriber() -> None:
        counts = await client.pubsub_numsub(key_changes.CHANNEL)
        assert counts[0][1] == 1, counts

    try:
        await eventually(one_subscriber, within=5, every=0.02)
    finally:
        await client.aclose()


async def test_the_listener_clears_the_cache_on_an_announcement(own_redis, listening):
    warm(2)
    client = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        await client.publish(key_changes.CHANNEL, b"changed")
    finally:
        await client.aclose()

    def cleared() -> None:
        assert key_cache.size() == 0

    await eventually(cleared, within=2, every=0.01)
    assert not listening.done()


async def test_the_listener_clears_the_cache_when_redis_comes_back(
    own_redis, listening, caplog
):
    """Announcements made while the listener was cut off are lost: what was
    cached meanwhile is dropped once it is subscribed again."""
    caplog.set_level(logging.WARNING, logger="accounts.key_changes")
    own_redis.stop(kill=True)

    def noticed() -> None:
        assert "lost the API key change listener" in caplog.text

    await eventually(noticed, within=5, every=0.02)
    warm(3)  # verified while Redis was away
    assert key_cache.size() == 3
    own_redis.start()
    await subscribed(own_redis)

    def cleared() -> None:
        assert key_cache.size() == 0

    await eventually(cleared, within=2, every=0.01)
    warm(1)  # and it goes on listening
    client = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        await client.publish(key_changes.CHANNEL, b"changed")
    finally:
        await client.aclose()

    def cleared() -> None:
        assert key_cache.size() == 0

    await eventually(cleared, within=2, every=0.01)


def test_the_listener_is_started_once_per_loop_and_only_when_caching(settings):
    async def start_twice() -> tuple[asyncio.Task, asyncio.Task]:
        key_changes.ensure_listening()
        first = key_changes._listeners[asyncio.get_running_loop()]
        key_changes.ensure_listening()
        second = key_changes._listeners[asyncio.get_running_loop()]
        first.cancel()
        return first, second

    first, second = asyncio.run(start_twice())
    assert first is second
    settings.BRIDGE_API_KEY_CACHE_SECONDS = 0

    async def start_disabled() -> bool:
        key_changes.ensure_listening()
        return asyncio.get_running_loop() in key_changes._listeners

    assert asyncio.run(start_disabled()) is False


async def test_a_silent_connection_is_given_up_and_the_cache_cleared(
    own_redis, monkeypatch, caplog
):
    """A partition leaves the socket open and nothing answering: the listener
    pings when it hears nothing, and gives up when the ping goes unanswered."""
    monkeypatch.setattr(key_changes, "LIVENESS_SECONDS", 0.1)
    caplog.set_level(logging.WARNING, logger="accounts.key_changes")
    task = asyncio.create_task(key_changes.listen(own_redis.url))
    try:
        await subscribed(own_redis)
        await asyncio.sleep(0.5)  # several pings answered: still listening
        assert "lost" not in caplog.text and not task.done()
        warm(2)
        own_redis.process.send_signal(signal.SIGSTOP)
        try:

            def gave_up() -> None:
                assert "lost the API key change listener" in caplog.text
                assert key_cache.size() == 0

            await eventually(gave_up, within=3, every=0.02)
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
