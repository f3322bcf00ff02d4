"""Shared fixtures: a real redis-server for the whole session, real daphne on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from channels.layers import channel_layers
from django.conf import settings
from django.test import override_settings

from bridge_project.embedded_redis import EmbeddedRedis
from bridge_project.layers import pubsub_layer
from tests.support.daphne import DaphneProcess, migrate, server_env


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def channel_layer_on_real_redis(redis_server: EmbeddedRedis) -> Iterator[None]:
    """Every test's channel layer is the production one, on the suite's Redis."""
    caches = {"default": {**settings.CACHES["default"], "LOCATION": redis_server.url}}
    with override_settings(
        REDIS_URL=redis_server.url,
        CHANNEL_LAYERS={"default": pubsub_layer(redis_server.url)},
        CACHES=caches,
    ):
        channel_layers.backends.clear()
        yield
    channel_layers.backends.clear()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup) -> Iterator[None]:
    """pytest-django's test database, torn down after the threads that hold
    connections to it are gone: the WebSocket database pool's, and asgiref's
    shared thread's (PostgreSQL refuses to drop a database in use)."""
    yield
    import gc

    from asgiref.sync import SyncToAsync
    from django.db import connections

    from messaging import ws_database

    ws_database.shutdown()
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
    gc.collect()


@pytest.fixture(autouse=True)
def fresh_rate_limits(redis_server: EmbeddedRedis) -> Iterator[None]:
    """Rate-limit windows last a minute and count per user id and address:
    without this, one test's messages and handshakes would count in the next.
    Streamed messages a test left open would be finished by a later test's
    sweep (realtime/stream_sweeper.py), into that test's database. (A test
    that stopped Redis leaves nothing to delete.)"""
    import redis

    from bridge_project import rate_limits

    rate_limits.local_windows.clear()
    if redis_server.process is not None:
        client = redis.Redis.from_url(redis_server.url)
        try:
            keys = [
                key
                for pattern in (f"{rate_limits.KEY_PREFIX}*", "bridge:stream*")
                for key in client.scan_iter(pattern, count=1000)
            ]
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    yield


@pytest.fixture(autouse=True)
def cold_api_key_cache() -> Iterator[None]:
    """Each test starts with an empty cache of verified API keys
    (accounts/key_cache.py): it is per process and outlives a test's
    rolled-back transaction, which sends no signal to clear it."""
    from accounts import key_cache

    key_cache.clear()
    yield
    key_cache.clear()


@pytest.fixture
def redis_restartable(redis_server: EmbeddedRedis) -> Iterator[EmbeddedRedis]:
    """The suite's Redis, running again (same port) after a test that stops it."""
    yield redis_server
    if redis_server.process is None:
        redis_server.start()


@pytest.fixture
def daphne_factory(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> Iterator[Callable[..., DaphneProcess]]:
    """Start daphne processes sharing the suite's Redis and one SQLite file."""
    started: list[DaphneProcess] = []
    database_url = f"sqlite:///{tmp_path / 'bridge.sqlite3'}"
    migrated = False

    def start(**overrides: str) -> DaphneProcess:
        nonlocal migrated
        env = server_env(redis_server.url, database_url, **overrides)
        if not migrated:
            migrate(env)
            migrated = True
        process = DaphneProcess(env, tmp_path / f"daphne-{len(started)}.log")
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def daphne(daphne_factory: Callable[..., DaphneProcess]) -> DaphneProcess:
    return daphne_factory()


@pytest.fixture
def default_public_accounts(db) -> None:
    """The accounts the data migration creates, back after a transactional test
    flushed them (Django's serialized_rollback clashes with content types)."""
    from accounts import selectors
    from accounts.models import DEFAULT_HANDLES, PublicAccount

    for handle in DEFAULT_HANDLES:
        PublicAccount.objects.get_or_create(handle=handle)
    selectors.invalidate_cache()
