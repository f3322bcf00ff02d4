"""The HTTP throttles in process: 429 `throttled` with Retry-After, counted in
Redis with one atomic INCR per request, and still counted while Redis is down
(SPEC §6; docs/security.md "Request rates over HTTP")."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from accounts.keys import api_key_create

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(30)]

TOKENS = "/api/tokens"


@pytest.fixture
def rates(settings) -> Callable[..., None]:
    """Set low rates for this test; DRF re-reads its settings when they change."""

    def set_rates(*, address: str | None = None, api_key: str | None = None):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"address": address, "api_key": api_key},
        }

    return set_rates


def mint(client: Client, **headers: str):
    return client.post(
        TOKENS, {"user_id": "alice"}, content_type="application/json", **headers
    )


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == "throttled"
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_address_over_its_rate_gets_429_with_retry_after(client, rates):
    rates(address="3/minute")
    assert [mint(client).status_code for _ in range(3)] == [201] * 3
    assert_throttled(mint(client))


def test_api_key_over_its_rate_gets_429_with_retry_after(client, rates, settings):
    settings.BRIDGE_AUTH_MODE = "token"
    rates(api_key="2/minute")
    raw = api_key_create(name="m", service="minter", permissions={"issue_tokens"}).raw
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert [mint(client, **auth).status_code for _ in range(2)] == [201] * 2
    assert_throttled(mint(client, **auth))


def test_throttles_still_count_while_redis_is_down(client, rates, redis_restartable):
    """Not "open when Redis is down": each process counts on its own instead."""
    rates(address="3/minute")
    redis_restartable.stop(kill=True)
    assert [mint(client).status_code for _ in range(3)] == [201] * 3
    assert_throttled(mint(client))
