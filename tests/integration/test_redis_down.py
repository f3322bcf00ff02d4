"""/health and the push API while the suite's real Redis is stopped (SPEC §6)."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client

from messaging.models import Message, StreamEntry
from messaging.streams.names import personal_stream

DEADLINE = 5.0


@pytest.mark.django_db
def test_health_is_ok_while_redis_is_up(client: Client):
    response = client.get("/health")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == body["checks"]["channel_layer"] == "ok"


@pytest.mark.django_db
def test_health_answers_503_quickly_when_redis_is_stopped(
    client: Client, redis_restartable
):
    # Steady state first, so the outage starts from a healthy service.
    assert client.get("/health").status_code == 200
    redis_restartable.stop(kill=True)
    started = time.monotonic()
    response = client.get("/health")
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["channel_layer"].startswith("error")
    # Only the kind of error: /health answers anyone, and the exception text
    # names Redis's address ("Error 111 connecting to 127.0.0.1:<port>").
    assert re.fullmatch(r"error: \w+", body["checks"]["channel_layer"]), body
    assert str(redis_restartable.port) not in response.content.decode()
    assert elapsed < DEADLINE


@pytest.mark.django_db
def test_push_answers_503_and_stores_nothing_when_redis_is_stopped(
    client: Client, redis_restartable
):
    # Steady state first, so the outage starts from a healthy service.
    assert client.get("/health").status_code == 200
    redis_restartable.stop(kill=True)
    started = time.monotonic()
    response = client.post(
        "/sse/push",
        {"user_id": "ivy", "message": "lost"},
        content_type="application/json",
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.content
    assert response.json()["error"] == "unavailable"
    assert elapsed < DEADLINE
    assert not Message.objects.exists()
    assert not StreamEntry.objects.filter(stream=personal_stream("ivy")).exists()
