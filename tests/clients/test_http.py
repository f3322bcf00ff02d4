"""`BridgeHTTP` and `AsyncBridgeHTTP` against a real daphne (open mode): batch
splitting, retries that never duplicate (idempotency keys, SPEC §5), typed
errors (SPEC §6, §9), history, topics and tokens.

Faults are injected by a transport that wraps the real one: it can lose a reply
after the server handled the request, refuse a connection, or answer 503/429
itself before the server sees anything."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bridge_client import (
    AsyncBridgeHTTP,
    BridgeHTTP,
    StreamClosed,
    Throttled,
    TransportError,
    Unavailable,
    push_body,
)
from bridge_client.errors import InvalidRequest, NotFound
from tests.support.ids import fresh_user_id

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

LOSE_REPLY = "lose the reply"
REFUSE = "refuse the connection"


def _fake(
    status: int, request: httpx.Request, retry_after: str = "0"
) -> httpx.Response:
    code = {503: "unavailable", 429: "throttled"}[status]
    body = {"error": code, "message": "injected", "detail": {}}
    return httpx.Response(
        status, headers={"Retry-After": retry_after}, json=body, request=request
    )


class Faulty(httpx.BaseTransport):
    """Plays `script` (one step per request), then passes requests through."""

    def __init__(self, *script: Any) -> None:
        self.inner = httpx.HTTPTransport()
        self.script = list(script)
        self.sent: list[httpx.Request] = []

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.sent]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        step = self.script.pop(0) if self.script else None
        if step == REFUSE:
            raise httpx.ConnectError("refused", request=request)
        if isinstance(step, tuple):
            return _fake(*step[:1], request, *step[1:])
        response = self.inner.handle_request(request)
        if step == LOSE_REPLY:
            response.read()
            response.close()
            raise httpx.ReadError("the reply was lost", request=request)
        return response


class AsyncFaulty(httpx.AsyncBaseTransport):
    def __init__(self, *script: Any) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.script = list(script)
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        step = self.script.pop(0) if self.script else None
        if isinstance(step, tuple):
            return _fake(*step[:1], request, *step[1:])
        response = await self.inner.handle_async_request(request)
        if step == LOSE_REPLY:
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("the reply was lost", request=request)
        return response


def _client(server, transport: httpx.BaseTransport, slept: list[float]) -> BridgeHTTP:
    return BridgeHTTP(server.http, transport=transport, sleep=slept.append)


def _stored(server, user: str) -> list[dict]:
    with BridgeHTTP(server.http) as http:
        return http.user_messages(user)["messages"]


# --- batches ------------------------------------------------------------------------


def test_a_batch_longer_than_bridge_max_batch_is_split_in_order(server, monkeypatch):
    monkeypatch.setenv("BRIDGE_MAX_BATCH", "10")
    user = fresh_user_id("batch")
    transport = Faulty()
    with BridgeHTTP(server.http, transport=transport) as http:
        reply = http.batch([push_body(user_id=user, message=str(n)) for n in range(25)])
    assert [len(body["messages"]) for body in transport.bodies()] == [10, 10, 5]
    seqs = [result["recipients"][0]["seq"] for result in reply["results"]]
    assert seqs == list(range(1, 26))
    assert [m["data"]["text"] for m in _stored(server, user)] == [
        str(n) for n in range(25)
    ]


def test_a_batch_over_the_servers_limit_is_accepted_in_two_requests(server):
    user = fresh_user_id("big")
    transport = Faulty()
    items = [{"user_id": user, "data": n} for n in range(1200)]
    with BridgeHTTP(server.http, transport=transport) as http:
        reply = http.batch(items)
    assert [len(body["messages"]) for body in transport.bodies()] == [1000, 200]
    assert len(reply["results"]) == 1200
    assert reply["results"][-1]["recipients"][0]["seq"] == 1200


# --- retries ------------------------------------------------------------------------


def test_a_push_whose_reply_was_lost_is_retried_and_stored_once(server):
    user = fresh_user_id("lost")
    transport, slept = Faulty(LOSE_REPLY), []
    with _client(server, transport, slept) as http:
        reply = http.push(user_id=user, message="once")
    first, second = transport.bodies()
    assert first == second and first["idempotency_key"]  # the same key, twice
    assert len(slept) == 1
    (stored,) = _stored(server, user)
    assert stored["id"] == reply["id"]


def test_a_batch_whose_reply_was_lost_is_retried_and_stored_once(server):
    user = fresh_user_id("lostbatch")
    transport, slept = Faulty(LOSE_REPLY), []
    with _client(server, transport, slept) as http:
        reply = http.batch([push_body(user_id=user, message=str(n)) for n in range(3)])
    assert len(transport.sent) == 2
    assert [m["id"] for m in _stored(server, user)] == [
        r["id"] for r in reply["results"]
    ]


def test_without_an_idempotency_key_a_lost_reply_is_not_retried(server):
    user = fresh_user_id("unsafe")
    transport, slept = Faulty(LOSE_REPLY), []
    with _client(server, transport, slept) as http, pytest.raises(TransportError):
        http.push(user_id=user, message="maybe", idempotent=False)
    assert len(transport.sent) == 1 and slept == []
    assert "idempotency_key" not in transport.bodies()[0]
    assert len(_stored(server, user)) == 1


def test_a_refused_connection_is_retried_even_without_a_key(server):
    user = fresh_user_id("refused")
    transport, slept = Faulty(REFUSE, REFUSE), []
    with _client(server, transport, slept) as http:
        http.push(user_id=user, message="never sent twice", idempotent=False)
    assert len(transport.sent) == 3 and len(slept) == 2
    assert len(_stored(server, user)) == 1


def test_503_and_429_are_retried_after_retry_after_for_safe_requests(server):
    user = fresh_user_id("busy")
    transport, slept = Faulty((503, "1"), (429, "2")), []
    with _client(server, transport, slept) as http:
        http.push(user_id=user, message="eventually")
    assert slept == [1.0, 2.0]
    assert len(_stored(server, user)) == 1


def test_a_stream_part_is_never_retried_after_a_503(server):
    user = fresh_user_id("part")
    transport, slept = Faulty((503,)), []
    with _client(server, transport, slept) as http, pytest.raises(Unavailable):
        http.stream_part("s1", "Hel", user_id=user)
    assert len(transport.sent) == 1 and slept == []
    assert "idempotency_key" not in transport.bodies()[0]


def test_retries_stop_after_the_attempts(server):
    transport, slept = Faulty(*[(429, "0")] * 10), []
    with _client(server, transport, slept) as http, pytest.raises(Throttled):
        http.stats()
    assert len(transport.sent) == 4


async def test_the_async_client_retries_and_splits_the_same_way(server, monkeypatch):
    monkeypatch.setenv("BRIDGE_MAX_BATCH", "2")
    user = fresh_user_id("async")
    transport, slept = AsyncFaulty(LOSE_REPLY, (503, "0")), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with AsyncBridgeHTTP(server.http, transport=transport, sleep=sleep) as http:
        reply = await http.batch([{"user_id": user, "message": "x"}] * 3)
        pushed = await http.push(user_id=user, message="y")
    # Chunk one: reply lost, 503, accepted; chunk two; the push.
    assert len(transport.sent) == 5
    assert len(reply["results"]) == 3 and len(slept) == 2
    assert [m["id"] for m in _stored(server, user)] == [
        *(r["id"] for r in reply["results"]),
        pushed["id"],
    ]


# --- errors, streams, history, topics, tokens ---------------------------------------


def test_errors_are_typed_with_their_detail(server):
    with BridgeHTTP(server.http) as http:
        with pytest.raises(InvalidRequest) as invalid:
            http.push(user_id="not valid!", message="x")
        assert invalid.value.status == 400 and "user_id" in invalid.value.detail
        with pytest.raises(NotFound):
            http.push(topic="nowhere:1", message="x")
        user = fresh_user_id("streamed")
        http.stream_part("job", "Hel", user_id=user)
        final = http.stream_part("job", "lo", user_id=user, final=True)
        assert final["final"] is True and final["recipients"][0]["seq"] == 1
        with pytest.raises(StreamClosed) as closed:
            http.stream_part("job", "again", user_id=user)
        assert closed.value.status == 409 and closed.value.code == "stream_closed"
    assert _stored(server, user)[0]["data"] == {"text": "Hello"}


def test_history_topics_members_and_tokens(server):
    user = fresh_user_id("hist")
    topic = f"room:{fresh_user_id('t')}"
    with BridgeHTTP(server.http) as http:
        http.batch([push_body(user_id=user, message=str(n)) for n in range(5)])
        http.batch([push_body(topic=topic, message=str(n)) for n in range(5)])
        older = http.my_messages(user_id=user, before_seq=4, limit=2)
        assert [m["seq"] for m in older["messages"]] == [2, 3]
        page = http.topic_messages(topic, after_seq=3)
        assert [m["seq"] for m in page["messages"]] == [4, 5]
        assert http.add_member(topic, user) == {"added": True}
        assert http.add_member(topic, user) == {"added": False}
        members = http.topic_members(topic)["members"]
        assert [m["user_id"] for m in members] == [user]
        assert topic in http.user_topics(user)["topics"]
        assert http.topic(topic)["seq"] == 5
        assert http.remove_member(topic, user) == {"removed": True}
        minted = http.token(user, topics=[topic])
        assert minted["token"] and minted["expires_at"]
        assert http.health()["status"] == "ok"
        assert "bridge_connections_open" in http.metrics()
