"""The HTTP API as data, with no I/O (SPEC §6, §8, §9).

Each endpoint is a function returning a `Call`: the requests to make and how to
turn their replies into a result. `BridgeHTTP` (sync) and `AsyncBridgeHTTP`
(async) only carry a `Call` over the network, with the retry rules of
`retry.py`; everything else (paths, bodies, idempotency keys, batch splitting,
error parsing) is written once, here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bridge_client.errors import HTTP_ERRORS_BY_CODE, HTTP_ERRORS_BY_STATUS, HTTPError
from bridge_client.errors import ServerError as _ServerError

DEFAULT_MAX_BATCH = 1000


def max_batch_from_env() -> int:
    """`BRIDGE_MAX_BATCH` when set (the server's own setting), else 1,000."""
    value = os.environ.get("BRIDGE_MAX_BATCH", "")
    try:
        return int(value) if value else DEFAULT_MAX_BATCH
    except ValueError:
        raise ValueError(
            f"BRIDGE_MAX_BATCH must be an integer, got {value!r}"
        ) from None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: Mapping[str, Any] | None = None
    body: Any = None
    # Safe to send again after a reply-less failure, a 503 or a 429: a read, or a
    # write made idempotent (an idempotency key, PUT/DELETE of a membership).
    retry_safe: bool = False
    # A user's WebSocket token instead of the client's API key (/api/me/*).
    bearer: str | None = None
    text: bool = False  # the reply is text (/metrics), not JSON


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any  # decoded JSON, or text


@dataclass(frozen=True)
class Call:
    requests: tuple[Request, ...]
    combine: Callable[[list[Reply]], Any] = field(
        default=lambda replies: replies[0].body
    )


def single(request: Request) -> Call:
    return Call((request,))


def error_for(status: int, headers: Mapping[str, str], body: Any) -> HTTPError:
    """The typed exception for an error reply `{"error", "message", "detail"}`."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code, message = body["error"], str(body.get("message", ""))
        detail = body.get("detail") if isinstance(body.get("detail"), dict) else {}
    else:
        code, message, detail = f"http_{status}", str(body)[:200], {}
    kind = HTTP_ERRORS_BY_CODE.get(code) or HTTP_ERRORS_BY_STATUS.get(status)
    if kind is None:
        kind = _ServerError if status >= 500 else HTTPError
    return kind(status, code, message, detail, retry_after=retry_after(headers))


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: Bridge never sends one


def _target(
    user_id: str | None,
    user_ids: Sequence[str] | None,
    topic: str | None,
    broadcast: bool,
) -> dict[str, Any]:
    given: list[tuple[str, Any]] = [
        (key, value)
        for key, value in (
            ("user_id", user_id),
            ("user_ids", user_ids),
            ("topic", topic),
        )
        if value is not None
    ]
    if broadcast:
        given.append(("broadcast", True))
    if len(given) != 1:
        raise ValueError("give exactly one of user_id, user_ids, topic, broadcast")
    key, value = given[0]
    return {key: list(value) if key == "user_ids" else value}


def _with_key(body: dict[str, Any], idempotent: bool) -> dict[str, Any]:
    if idempotent and "idempotency_key" not in body:
        return {**body, "idempotency_key": uuid.uuid4().hex}
    return body


def push_body(
    *,
    user_id: str | None = None,
    user_ids: Sequence[str] | None = None,
    topic: str | None = None,
    broadcast: bool = False,
    message: str | None = None,
    data: Any = None,
    event: str | None = None,
    sender: str | None = None,
    persist: bool | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """One push body (also a batch item)."""
    body = _target(user_id, user_ids, topic, broadcast)
    if message is not None:
        body["message"] = message
    else:
        body["data"] = data
    for key, value in (
        ("event", event),
        ("sender", sender),
        ("persist", persist),
        ("idempotency_key", idempotency_key),
    ):
        if value is not None:
            body[key] = value
    return body


def push(body: dict[str, Any], *, idempotent: bool = True) -> Call:
    """`POST /sse/push`; adds an idempotency key unless `idempotent=False`."""
    body = _with_key(body, idempotent)
    return single(
        Request("POST", "/sse/push", body=body, retry_safe="idempotency_key" in body)
    )


def batch(
    messages: Iterable[dict[str, Any]],
    *,
    idempotent: bool = True,
    max_batch: int | None = None,
) -> Call:
    """`POST /sse/push/batch`, split into requests of at most `max_batch` items
    (`BRIDGE_MAX_BATCH`); the results of all, in order, as one `{"results"}`.

    Each request is all-or-nothing on the server; a failure part-way raises with
    the earlier chunks sent. With idempotency keys (the default) sending the
    same list again sends only what was not sent."""
    size = max_batch or max_batch_from_env()
    items = [_with_key(dict(item), idempotent) for item in messages]
    if not items:
        raise ValueError("a batch needs at least one message")
    requests = tuple(
        Request(
            "POST",
            "/sse/push/batch",
            body={"messages": chunk},
            retry_safe=all("idempotency_key" in item for item in chunk),
        )
        for chunk in (items[n : n + size] for n in range(0, len(items), size))
    )

    def combine(replies: list[Reply]) -> dict[str, Any]:
        return {"results": [r for reply in replies for r in reply.body["results"]]}

    return Call(requests, combine)


def stream_part(
    stream_id: str,
    delta: str = "",
    *,
    user_id: str | None = None,
    topic: str | None = None,
    final: bool = False,
    data: dict[str, Any] | None = None,
    event: str | None = None,
    sender: str | None = None,
) -> Call:
    """One part of a streamed message over HTTP (SPEC §9). Parts carry no
    idempotency key (the server refuses one), so they are never retried after a
    request that may have arrived."""
    body = _target(user_id, None, topic, False)
    body.update(stream_id=stream_id, delta=delta)
    if final:
        body["final"] = True
    for key, value in (("data", data), ("event", event), ("sender", sender)):
        if value is not None:
            body[key] = value
    return single(Request("POST", "/sse/push", body=body))


def token(user_id: str, *, topics: Sequence[str] | None = None) -> Call:
    """`POST /api/tokens` → `{"token", "expires_at"}`. Minting twice is harmless."""
    body: dict[str, Any] = {"user_id": user_id}
    if topics:
        body["topics"] = list(topics)
    return single(Request("POST", "/api/tokens", body=body, retry_safe=True))


def _page(
    after_seq: int | None, before_seq: int | None, limit: int | None, **more: Any
) -> dict[str, Any]:
    params = {"after_seq": after_seq, "before_seq": before_seq, "limit": limit, **more}
    return {key: value for key, value in params.items() if value is not None}


def get(path: str, bearer: str | None = None, **params: Any) -> Call:
    query = {key: value for key, value in params.items() if value is not None}
    return single(
        Request("GET", path, params=query or None, retry_safe=True, bearer=bearer)
    )


def _topic_path(topic: str, *rest: str) -> str:
    # Topic names are written as they are (`room:42`); quote anything else.
    parts = [quote(topic, safe=":@=.-_"), *(quote(p, safe="") for p in rest)]
    return "/api/topics/" + "/".join(parts)


def user_messages(
    user_id: str,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int | None = None,
) -> Call:
    return get(
        f"/api/users/{quote(user_id, safe='')}/messages",
        **_page(after_seq, before_seq, limit),
    )


def my_messages(
    *,
    token: str | None = None,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int | None = None,
    user_id: str | None = None,
) -> Call:
    """`GET /api/me/messages` with a user's WebSocket token (open mode: `user_id`)."""
    return get(
        "/api/me/messages",
        token,
        **_page(after_seq, before_seq, limit, user_id=user_id),
    )


def topic_messages(
    topic: str,
    *,
    token: str | None = None,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int | None = None,
) -> Call:
    return get(
        _topic_path(topic, "messages"), token, **_page(after_seq, before_seq, limit)
    )


def unread(user_id: str | None = None, *, token: str | None = None) -> Call:
    if user_id is not None and token is None:
        return get(f"/api/users/{quote(user_id, safe='')}/unread")
    return get("/api/me/unread", token, user_id=user_id)


def membership(method: str, topic: str, user_id: str) -> Call:
    path = _topic_path(topic, "members", user_id)
    return single(Request(method, path, retry_safe=True))


def post(path: str, *, retry_safe: bool) -> Call:
    return single(Request("POST", path, retry_safe=retry_safe))


def recall(message_id: str) -> Call:
    # Recalling again answers the same and sends the frames again (SPEC §9).
    return single(
        Request(
            "DELETE", f"/api/messages/{quote(message_id, safe='')}", retry_safe=True
        )
    )


def topic_path(topic: str, *rest: str) -> str:
    return _topic_path(topic, *rest)
