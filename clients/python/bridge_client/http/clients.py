"""The HTTP API client, sync (`BridgeHTTP`) and async (`AsyncBridgeHTTP`).

The endpoints are written once, in `_Endpoints`, as `Call`s (`calls.py`); the
two classes differ only in how they send one (`_run`). `BRIDGE_URL` and
`BRIDGE_API_KEY` are read when no url or key is given.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import httpx

from bridge_client.errors import TransportError
from bridge_client.http import calls
from bridge_client.http.calls import Call, Reply, Request
from bridge_client.http.retry import RetryPolicy

R = TypeVar("R")
DEFAULT_URL = "http://127.0.0.1:8000"


def _settings(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    url = url or os.environ.get("BRIDGE_URL") or DEFAULT_URL
    api_key = api_key if api_key is not None else os.environ.get("BRIDGE_API_KEY")
    return url.rstrip("/"), api_key or None


def _headers(request: Request, api_key: str | None) -> dict[str, str]:
    bearer = request.bearer or api_key
    return {"Authorization": f"Bearer {bearer}"} if bearer else {}


def _decode(request: Request, response: httpx.Response) -> Reply:
    """The reply, or the typed error it stands for."""
    try:
        body: Any = response.text if request.text else response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        raise calls.error_for(response.status_code, response.headers, body)
    return Reply(response.status_code, response.headers, body)


class _Endpoints(Generic[R]):
    """Every endpoint, once; `R` is the result (sync) or an awaitable of it."""

    def _run(self, call: Call) -> R:
        raise NotImplementedError

    # --- pushes (SPEC §6, §8, §9) -------------------------------------------------

    def push(
        self,
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
        idempotent: bool = True,
    ) -> R:
        """`POST /sse/push`; the 202 reply. An idempotency key is added (and
        makes retries safe) unless `idempotent=False`."""
        body = calls.push_body(
            user_id=user_id,
            user_ids=user_ids,
            topic=topic,
            broadcast=broadcast,
            message=message,
            data=data,
            event=event,
            sender=sender,
            persist=persist,
            idempotency_key=idempotency_key,
        )
        return self._run(calls.push(body, idempotent=idempotent))

    def batch(
        self,
        messages: Iterable[dict[str, Any]],
        *,
        idempotent: bool = True,
        max_batch: int | None = None,
    ) -> R:
        """`POST /sse/push/batch` for any number of push bodies (`push_body()`
        builds one), split over `BRIDGE_MAX_BATCH`; `{"results": [...]}`."""
        return self._run(
            calls.batch(messages, idempotent=idempotent, max_batch=max_batch)
        )

    def stream_part(
        self,
        stream_id: str,
        delta: str = "",
        *,
        user_id: str | None = None,
        topic: str | None = None,
        final: bool = False,
        data: dict[str, Any] | None = None,
        event: str | None = None,
        sender: str | None = None,
    ) -> R:
        """One part of a streamed message; `final=True` on the last."""
        return self._run(
            calls.stream_part(
                stream_id,
                delta,
                user_id=user_id,
                topic=topic,
                final=final,
                data=data,
                event=event,
                sender=sender,
            )
        )

    def recall(self, message_id: str) -> R:
        """`DELETE /api/messages/<id>`."""
        return self._run(calls.recall(message_id))

    # --- tokens and history -------------------------------------------------------

    def token(self, user_id: str, *, topics: Sequence[str] | None = None) -> R:
        """`POST /api/tokens` → `{"token", "expires_at"}`."""
        return self._run(calls.token(user_id, topics=topics))

    def user_messages(
        self,
        user_id: str,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int | None = None,
    ) -> R:
        return self._run(
            calls.user_messages(
                user_id, after_seq=after_seq, before_seq=before_seq, limit=limit
            )
        )

    def my_messages(
        self,
        *,
        token: str | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int | None = None,
        user_id: str | None = None,
    ) -> R:
        """`GET /api/me/messages` with a user's token (open mode: `user_id`)."""
        return self._run(
            calls.my_messages(
                token=token,
                after_seq=after_seq,
                before_seq=before_seq,
                limit=limit,
                user_id=user_id,
            )
        )

    def unread(self, user_id: str | None = None, *, token: str | None = None) -> R:
        """A user's read positions and unread counts (ops with `user_id`, or
        `/api/me/unread` with the user's token)."""
        return self._run(calls.unread(user_id, token=token))

    # --- topics (SPEC §8) ---------------------------------------------------------

    def topics(
        self,
        *,
        namespace: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
    ) -> R:
        return self._run(
            calls.get("/api/topics", namespace=namespace, offset=offset, limit=limit)
        )

    def topic(self, topic: str) -> R:
        return self._run(calls.get(calls.topic_path(topic)))

    def topic_presence(self, topic: str) -> R:
        return self._run(calls.get(calls.topic_path(topic, "presence")))

    def topic_members(
        self, topic: str, *, offset: int | None = None, limit: int | None = None
    ) -> R:
        return self._run(
            calls.get(calls.topic_path(topic, "members"), offset=offset, limit=limit)
        )

    def add_member(self, topic: str, user_id: str) -> R:
        return self._run(calls.membership("PUT", topic, user_id))

    def remove_member(self, topic: str, user_id: str) -> R:
        return self._run(calls.membership("DELETE", topic, user_id))

    def topic_messages(
        self,
        topic: str,
        *,
        token: str | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int | None = None,
    ) -> R:
        return self._run(
            calls.topic_messages(
                topic,
                token=token,
                after_seq=after_seq,
                before_seq=before_seq,
                limit=limit,
            )
        )

    def user_topics(self, user_id: str) -> R:
        return self._run(calls.get(f"/api/users/{user_id}/topics"))

    def reset_topic(self, topic: str) -> R:
        return self._run(calls.post(calls.topic_path(topic, "reset"), retry_safe=False))

    # --- operations ---------------------------------------------------------------

    def health(self) -> R:
        return self._run(calls.get("/health"))

    def stats(self) -> R:
        return self._run(calls.get("/api/stats"))

    def online(self, *, offset: int | None = None, limit: int | None = None) -> R:
        return self._run(calls.get("/api/users/online", offset=offset, limit=limit))

    def connections(self, user_id: str) -> R:
        return self._run(calls.get(f"/api/users/{user_id}/connections"))

    def disconnect(self, user_id: str) -> R:
        # Closing a user's connections twice is harmless.
        return self._run(
            calls.post(f"/api/users/{user_id}/disconnect", retry_safe=True)
        )

    def metrics(self) -> R:
        return self._run(
            Call((Request("GET", "/metrics", retry_safe=True, text=True),))
        )


class BridgeHTTP(_Endpoints[Any]):
    """The HTTP API, blocking. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url, self.api_key = _settings(url, api_key)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, transport=transport
        )

    def _run(self, call: Call) -> Any:
        return call.combine([self._send(request) for request in call.requests])

    def _send(self, request: Request) -> Reply:
        backoff = self.retry.backoff()
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    request.method,
                    request.path,
                    params=request.params,
                    json=request.body,
                    headers=_headers(request, self.api_key),
                )
            except httpx.TransportError as failed:
                outcome = _after(self.retry, request, failed, attempt, backoff)
            else:
                outcome = _after(self.retry, request, response, attempt, backoff)
            if isinstance(outcome, Reply):
                return outcome
            self._sleep(outcome)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BridgeHTTP:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncBridgeHTTP(_Endpoints[Awaitable[Any]]):
    """The HTTP API for asyncio; every method returns an awaitable."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url, self.api_key = _settings(url, api_key)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout, transport=transport
        )

    def _run(self, call: Call) -> Awaitable[Any]:
        return self._run_async(call)

    async def _run_async(self, call: Call) -> Any:
        return call.combine([await self._send(request) for request in call.requests])

    async def _send(self, request: Request) -> Reply:
        backoff = self.retry.backoff()
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    request.method,
                    request.path,
                    params=request.params,
                    json=request.body,
                    headers=_headers(request, self.api_key),
                )
            except httpx.TransportError as failed:
                outcome = _after(self.retry, request, failed, attempt, backoff)
            else:
                outcome = _after(self.retry, request, response, attempt, backoff)
            if isinstance(outcome, Reply):
                return outcome
            await self._sleep(outcome)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncBridgeHTTP:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _after(
    retry: RetryPolicy,
    request: Request,
    result: httpx.Response | httpx.TransportError,
    attempt: int,
    backoff: Any,
) -> Reply | float:
    """What one attempt comes to, for the sync and the async client alike:
    the decoded reply, or how long to wait before the next attempt. Raises
    TransportError (or the reply's typed error) when it is not retried."""
    if isinstance(result, httpx.TransportError):
        sent = not isinstance(result, httpx.ConnectError | httpx.ConnectTimeout)
        delay = retry.after_failure(
            request, sent=sent, attempt=attempt, backoff=backoff
        )
        if delay is None:
            raise TransportError(repr(result)) from result
        return delay
    delay = retry.after_reply(
        request, result.status_code, result.headers, attempt, backoff
    )
    if delay is None:
        return _decode(request, result)
    return delay
