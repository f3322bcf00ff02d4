"""HTTP throttles count in the shared Redis cache, so every process sees the same
buckets; a forged X-Forwarded-For gets no fresh one (SPEC §6 `throttled` 429).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.credentials import django_shell, token_mode_env
from tests.support.daphne import DaphneProcess, running_daphnes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

ADDRESS_RATE = 5
KEY_RATE = 3


@pytest.fixture(scope="module")
def open_pair(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    """Two open-mode processes: callers without a key are counted by address."""
    workdir = tmp_path_factory.mktemp("throttle-open")
    with running_daphnes(
        redis_server.url,
        workdir,
        2,
        database=migrated_sqlite,
        BRIDGE_THROTTLE_ADDRESS_RATE=f"{ADDRESS_RATE}/minute",
        BRIDGE_NUM_PROXIES="0",
    ) as (a, b):
        yield a, b


@pytest.fixture(scope="module")
def token_server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    workdir = tmp_path_factory.mktemp("throttle-token")
    env = token_mode_env(BRIDGE_THROTTLE_API_KEY_RATE=f"{KEY_RATE}/minute")
    with running_daphnes(
        redis_server.url, workdir, 1, database=migrated_sqlite, **env
    ) as (process,):
        yield process


@pytest.fixture(autouse=True)
def fresh_buckets(redis_server: EmbeddedRedis) -> Iterator[None]:
    """Throttle history outlives a test (and other modules count 127.0.0.1 too)."""
    client = redis.Redis.from_url(redis_server.url)
    for key in client.scan_iter("bridge:limit:http:*"):
        client.delete(key)
    yield
    client.close()


def mint(server: DaphneProcess, **headers: str) -> httpx.Response:
    """POST /api/tokens: cheap, and needs no key in open mode."""
    return httpx.post(
        f"{server.http}/api/tokens",
        json={"user_id": "alice"},
        headers=headers,
        timeout=10,
    )


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == "throttled"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60


def test_address_bucket_is_shared_by_every_process(open_pair):
    a, b = open_pair
    statuses = [mint(server).status_code for server in (a, a, a, b, b)]
    assert statuses == [201] * ADDRESS_RATE
    assert_throttled(mint(b))
    assert_throttled(mint(a))


def test_forged_forwarded_for_does_not_get_a_fresh_bucket(open_pair):
    a, b = open_pair
    statuses = [
        mint(server, **{"X-Forwarded-For": f"198.51.100.{n}"}).status_code
        for n, server in enumerate((a, b, a, b, a))
    ]
    assert statuses == [201] * ADDRESS_RATE
    assert_throttled(mint(b, **{"X-Forwarded-For": "203.0.113.77"}))
    assert_throttled(mint(a, **{"X-Forwarded-For": "203.0.113.78, 10.0.0.1"}))
    assert_throttled(mint(a, **{"X-Real-IP": "203.0.113.79"}))


async def test_concurrent_requests_on_two_processes_are_counted_exactly(open_pair):
    """One atomic INCR per request: a burst split over two processes admits
    exactly the rate, not whatever a read-modify-write race lets through."""
    a, b = open_pair

    async def mint_async(client: httpx.AsyncClient, server: DaphneProcess) -> int:
        response = await client.post(
            f"{server.http}/api/tokens", json={"user_id": "alice"}
        )
        return response.status_code

    async with httpx.AsyncClient(timeout=30) as client:
        statuses = await asyncio.gather(
            *(mint_async(client, server) for server in [a, b] * 20)
        )
    assert sorted(statuses) == [201] * ADDRESS_RATE + [429] * (40 - ADDRESS_RATE)


def test_health_is_never_throttled(open_pair):
    a, _ = open_pair
    for _ in range(ADDRESS_RATE):
        mint(a)
    assert_throttled(mint(a))
    assert httpx.get(f"{a.http}/health", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def minter_keys(token_server: DaphneProcess) -> list[str]:
    code = (
        "import json\n"
        "from accounts.keys import api_key_create\n"
        "print(json.dumps([api_key_create(name=f'm{n}', service=f'minter{n}', "
        "permissions={'issue_tokens'}).raw for n in range(2)]))"
    )
    return django_shell(token_server.env, code)


def test_each_api_key_has_its_own_bucket(token_server, minter_keys):
    first, second = (f"Bearer {key}" for key in minter_keys)
    statuses = [
        mint(token_server, Authorization=first).status_code for _ in range(KEY_RATE)
    ]
    assert statuses == [201] * KEY_RATE
    assert_throttled(mint(token_server, Authorization=first))
    # Another key, from the same address, is not held back by the first one.
    assert mint(token_server, Authorization=second).status_code == 201
