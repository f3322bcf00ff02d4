"""What operators see (SPEC §6 metrics; structured logs): one token-mode daphne
with BRIDGE_LOG_FORMAT=json, scraped at GET /metrics from 127.0.0.1 (allowed by
the default BRIDGE_METRICS_ALLOWED_IPS) and read from its log.

Counters are per process and shared by this module's tests: every check is on
the difference between two scrapes around the action.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.cluster import instance_name
from tests.support.credentials import django_shell, mint_token, token_mode_env
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.json_logs import events, json_records, non_json_lines
from tests.support.polling import eventually
from tests.support.prometheus import Samples, scrape, value
from tests.support.ws import Client, receive_messages

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

CREATE_KEYS = """
import json
from accounts.keys import api_key_create
print(json.dumps({
    "push": api_key_create(name="push", service="builds", permissions={"push"}).raw,
}))
"""


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    workdir = tmp_path_factory.mktemp("observability")
    env = token_mode_env(BRIDGE_LOG_FORMAT="json")
    with running_daphnes(
        redis_server.url, workdir, 1, database=migrated_sqlite, **env
    ) as (process,):
        yield process


@pytest.fixture(scope="module")
def push_key(server: DaphneProcess) -> str:
    return django_shell(server.env, CREATE_KEYS)["push"]


async def open_as(
    sockets: list[Client], server: DaphneProcess, user_id: str, token: str
) -> tuple[Client, dict]:
    client = await Client.connect(f"{server.ws}/ws?user_id={user_id}&token={token}")
    sockets.append(client)
    connected = await client.receive()
    assert connected["type"] == "connected", connected
    return client, connected


async def push(
    http: httpx.AsyncClient, server: DaphneProcess, key: str, user_id: str, text: str
) -> dict[str, Any]:
    reply = await http.post(
        f"{server.http}/sse/push",
        json={"user_id": user_id, "message": text},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert reply.status_code == 202, reply.text
    return reply.json()


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def settled(
    http: httpx.AsyncClient, server: DaphneProcess, open_now: int = 0
) -> Samples:
    """A scrape once the sockets closed by earlier tests are counted as closed
    (only this module's tests use this server): `open_now` are still open."""

    async def counted() -> Samples:
        _, samples = await scrape(http, server.http)
        assert value(samples, "bridge_connections_open") == open_now, "not settled"
        return samples

    return await eventually(counted, within=5)


# --- GET /metrics ----------------------------------------------------------------


async def test_connects_raise_open_and_total_connections(server, http, sockets):
    user = fresh_user_id("metric")
    before = await settled(http, server)
    for _ in range(2):
        await open_as(sockets, server, user, mint_token(user))

    _, after = await scrape(http, server.http)

    assert delta(before, after, "bridge_connections_open") == 2
    assert delta(before, after, "bridge_connections_total") == 2


async def test_a_push_raises_pushed_stored_delivered_and_latency(
    server, push_key, http, sockets
):
    user = fresh_user_id("metric")
    clients = [
        (await open_as(sockets, server, user, mint_token(user)))[0] for _ in range(2)
    ]
    _, before = await scrape(http, server.http)

    await push(http, server, push_key, user, "counted")
    for client in clients:
        await receive_messages(client, 1)

    _, after = await scrape(http, server.http)
    assert delta(before, after, "bridge_messages_pushed_total") == 1
    assert delta(before, after, "bridge_messages_stored_total") == 1
    assert delta(before, after, "bridge_messages_delivered_total") == 2
    assert delta(before, after, "bridge_push_latency_seconds_count") == 1
    assert delta(before, after, "bridge_push_latency_seconds_sum") > 0
    assert delta(before, after, "bridge_batch_size_count") == 1


async def test_a_refused_frame_is_counted_by_its_error_code(server, http, sockets):
    user = fresh_user_id("metric")
    client, _ = await open_as(sockets, server, user, mint_token(user))
    _, before = await scrape(http, server.http)

    await client.send("this is not json")
    error = await client.receive_type("error")

    assert error["code"] == "invalid_json"
    _, after = await scrape(http, server.http)
    refused = "bridge_frames_refused_total"
    assert delta(before, after, refused, code="invalid_json") == 1
    assert delta(before, after, refused, code="invalid_frame") == 0


async def test_closes_are_counted_by_close_code(server, http, sockets):
    user = fresh_user_id("metric")
    asked, _ = await open_as(sockets, server, user, mint_token(user))
    leaving, _ = await open_as(sockets, server, user, mint_token(user))
    before = await settled(http, server, open_now=2)

    await asked.send({"type": "disconnect"})
    assert await asked.close_code() == 1000
    await leaving.connection.close(code=1001)

    async def counted() -> None:
        _, after = await scrape(http, server.http)
        assert delta(before, after, "bridge_disconnects_total", code="1000") == 1
        assert delta(before, after, "bridge_disconnects_total", code="1001") == 1
        assert delta(before, after, "bridge_connections_open") == -2

    await eventually(counted, within=5)


async def test_no_metric_is_labelled_with_a_user_id(server, push_key, http, sockets):
    users = [fresh_user_id("labelcheck") for _ in range(3)]
    for user in users:
        client, _ = await open_as(sockets, server, user, mint_token(user))
        await push(http, server, push_key, user, "hello")
        await receive_messages(client, 1)
        await client.send("not json either")
        await client.receive_type("error")
    await sockets.pop().close()

    text, samples = await scrape(http, server.http)

    assert value(samples, "bridge_connections_total") >= 3
    leaked = [line for line in text.splitlines() if any(u in line for u in users)]
    assert leaked == []
    assert "labelcheck" not in text


# --- BRIDGE_LOG_FORMAT=json ------------------------------------------------------


async def test_connect_refused_frames_and_disconnect_are_one_json_line_each(
    server, sockets
):
    mark = server.log_size()
    user = fresh_user_id("logged")
    token = mint_token(user)
    secret = f"private-words-{fresh_user_id()}"
    client, connected = await open_as(sockets, server, user, token)
    connection_id = connected["connection_id"]

    await client.send(f"not json {secret}")
    assert (await client.receive_type("error"))["code"] == "invalid_json"
    await client.send({"type": "message", "text": f"{secret} @nobody_listens"})
    assert (await client.receive_type("error"))["code"] == "no_recipient"
    await client.send({"type": "disconnect"})
    assert await client.close_code() == 1000

    def logged() -> list[dict[str, Any]]:
        records = events(
            json_records(server.log(mark)), "disconnect", connection_id=connection_id
        )
        assert records, "no disconnect line yet"
        return json_records(server.log(mark))

    records = await eventually(logged, within=5)
    mine = [r for r in records if r.get("connection_id") == connection_id]
    assert [r["event"] for r in mine] == [
        "connect",
        "frame_refused",
        "frame_refused",
        "disconnect",
    ], mine
    for record in mine:
        assert record["user_id"] == user
        assert record["instance"] == instance_name(server)
        assert record["logger"] == "bridge.events"
        assert isinstance(record["time"], str) and record["time"]
    assert mine[0]["remote_addr"] == "127.0.0.1"
    assert [r["code"] for r in mine[1:3]] == ["invalid_json", "no_recipient"]
    disconnect = mine[3]
    assert disconnect["code"] == 1000
    assert isinstance(disconnect["duration_s"], int | float)
    assert 0 <= disconnect["duration_s"] < 30
    text = server.log(mark)
    assert secret not in text
    assert token not in text


async def test_a_push_is_one_json_line_naming_its_recipient_without_the_body(
    server, push_key, http
):
    mark = server.log_size()
    user = fresh_user_id("pushed")
    secret = f"private-words-{fresh_user_id()}"

    reply = await push(http, server, push_key, user, f"build failed: {secret}")

    def logged() -> list[dict[str, Any]]:
        found = events(json_records(server.log(mark)), "push")
        assert found, "no push line yet"
        return found

    (record,) = await eventually(logged, within=5)
    assert record["instance"] == instance_name(server)
    assert record["recipients"] == len(reply["recipients"]) == 1
    # Without the recipient an operator cannot find a user's pushes in the log.
    assert record.get("user_id") == user, record
    text = server.log(mark)
    assert secret not in text
    assert push_key not in text


async def test_a_refused_token_is_not_logged(server):
    mark = server.log_size()
    user = fresh_user_id("forged")
    forged = mint_token(user, secret_key="not-the-servers-key-" + "y" * 40)
    client = await Client.connect(f"{server.ws}/ws?user_id={user}&token={forged}")
    try:
        assert (await client.receive())["code"] == "unauthenticated"
        assert await client.close_code() == 4401
    finally:
        await client.close()

    def logged() -> None:
        refused = events(json_records(server.log(mark)), "handshake_refused")
        assert [r["code"] for r in refused] == [4401], refused

    await eventually(logged, within=5)
    assert forged not in server.log(mark)


async def test_with_json_format_every_log_line_is_a_json_object(server, sockets):
    """A log shipper told the format is JSON parses every line."""
    mark = server.log_size()
    user = fresh_user_id("shipped")
    client, _ = await open_as(sockets, server, user, mint_token(user))
    await client.send({"type": "disconnect"})
    assert await client.close_code() == 1000

    def disconnect_logged() -> None:
        assert events(json_records(server.log(mark)), "disconnect", user_id=user)

    await eventually(disconnect_logged, within=5)
    assert non_json_lines(server.log()) == []
