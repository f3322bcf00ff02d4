"""GET /health, GET /metrics and GET /api/schema (SPEC §6 Operations)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client() -> Client:
    return Client()


def test_health_is_200_with_both_checks_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "channel_layer": "ok"},
    }


def test_health_needs_no_credentials_and_no_allowed_address(client):
    response = client.get("/health", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200


def test_metrics_from_loopback_is_prometheus_text_with_bridge_metrics(client):
    client.post(
        "/sse/push",
        data=json.dumps({"user_id": "alice", "message": "x"}),
        content_type="application/json",
    )
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for name in (
        "bridge_connections_open",
        "bridge_connections_total",
        "bridge_messages_pushed_total",
        "bridge_messages_delivered_total",
        "bridge_messages_stored_total",
        "bridge_batch_size",
        "bridge_push_latency_seconds",
    ):
        assert f"# TYPE {name}" in text, name


def test_pushes_are_counted_in_metrics(client):
    def pushed() -> float:
        text = client.get("/metrics").content.decode()
        (line,) = [
            line
            for line in text.splitlines()
            if line.startswith("bridge_messages_pushed_total ")
        ]
        return float(line.split()[1])

    before = pushed()
    client.post(
        "/sse/push/batch",
        data=json.dumps(
            {
                "messages": [
                    {"user_id": "alice", "data": 1},
                    {"user_id": "bob", "data": 2},
                ]
            }
        ),
        content_type="application/json",
    )
    assert pushed() == before + 2


def test_metrics_from_ipv6_loopback_is_allowed(client):
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


@pytest.fixture
def token_mode(settings) -> None:
    """Production auth: open mode grants every permission, `ops` included (§4)."""
    settings.BRIDGE_AUTH_MODE = "token"


def assert_metrics_refused(response) -> None:
    # No credentials at all: 401 not_authenticated and 403 both keep them out.
    assert response.status_code in (401, 403), response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}
    assert (
        body["error"]
        == {401: "not_authenticated", 403: "permission_denied"}[response.status_code]
    )
    assert "bridge_" not in response.content.decode()


@pytest.mark.parametrize("address", ["10.0.0.7", "203.0.113.9", "127.0.0.2"])
def test_metrics_from_another_address_are_refused_as_json(client, token_mode, address):
    assert_metrics_refused(client.get("/metrics", REMOTE_ADDR=address))


def test_metrics_from_loopback_need_no_key_in_token_mode(client, token_mode):
    assert client.get("/metrics").status_code == 200


def test_metrics_allowed_ips_setting_is_honoured(client, settings, token_mode):
    settings.BRIDGE_METRICS_ALLOWED_IPS = ["10.0.0.7"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7").status_code == 200
    assert_metrics_refused(client.get("/metrics"))


def test_forwarded_for_header_does_not_open_metrics(client, token_mode):
    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1"
    )
    assert_metrics_refused(response)


def test_schema_is_an_openapi_3_document_of_the_json_api(client):
    response = client.get("/api/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/sse/push" in schema["paths"]
    assert "/sse/push/batch" in schema["paths"]
    assert "/health" in schema["paths"]
    assert "post" in schema["paths"]["/sse/push"]


def test_schema_needs_no_credentials(client):
    response = client.get("/api/schema", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200
    assert b"/sse/push" in response.content


def test_a_loop_counter_is_exposed_as_a_prometheus_counter_is():
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    from messaging.metrics import LoopCounter

    registry = CollectorRegistry()
    loop_counter = LoopCounter("it_frames_total", "Frames", registry=registry)
    library_counter = Counter("it_library_total", "Frames", registry=registry)
    for amount in (1, 1, 5):
        loop_counter.inc(amount)
        library_counter.inc(amount)
    assert registry.get_sample_value("it_frames_total") == 7
    assert registry.get_sample_value("it_frames_created") > 0
    text = generate_latest(registry).decode()
    assert "# TYPE it_frames_total counter\nit_frames_total 7.0\n" in text
    assert "# TYPE it_library_total counter\nit_library_total 7.0\n" in text
