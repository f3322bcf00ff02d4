"""A minimal in-memory reference bridge: the floor the benchmark compares Bridge to.

    python -m daphne -b 127.0.0.1 -p 8001 bench.reference:application

A bare ASGI application: no Django, no Redis, no database, one process. It
keeps a dict user_id -> set of live WebSocket `send` callables and a per-user
`seq` counter, the same for topics (SPEC §8), and speaks the part of SPEC §2,
§3, §6 and §8 the benchmark uses:

- `GET /ws?user_id=U`: accept, send `connected` (connection_id, user_id,
  server_time, heartbeat_interval, last_seq 0); answer a client `ping` with
  `pong`; `subscribe` (`topic`, optional `since`, `ref`) with `subscribed`
  (`topic`, `seq`, `recovered`, `ref`), `unsubscribe` with `unsubscribed`
  (`reason: "client"`); ignore everything else the client sends.
- `POST /sse/push`: `user_id`, `user_ids` or `topic`; `data` or `message`;
  `event` (default `message`); `persist: false` gives `seq: null`. Each
  recipient's `message` frame is encoded once and sent to every connection of
  that user; the reply is 202 `{"id", "recipients": [{"user_id", "seq",
  "online", "connections"}]}`. A topic push is encoded once and sent to every
  subscribed connection, with the topic's own `seq`; the reply is 202 `{"id",
  "topic", "seq", "subscribers", "recipients": []}`.
- `POST /sse/push` with `stream_id` and `delta` (and `final: true` on the
  last part) instead of `data`/`message` (SPEC §9, a streamed message): each
  part is sent at once, encoded once, as a `stream` frame (`id`, `stream_id`,
  `from: null`, `to` or `topic`, `index` 0, 1, 2..., `delta`) to every
  connection of the user or subscriber of the topic, in arrival order; the
  final part then sends the whole message once as an ordinary `message` with
  its `seq`, `data.text` = the parts joined (plus the final part's `data`) and
  `stream_id`. Reply 202 `{"id", "stream_id", "index", "final"}`, the final
  part's with the push reply as well.
- `POST /sse/push/batch`: `{"messages": [...]}` -> 202 `{"results": [...]}`,
  validated all-or-nothing first (a streamed part is refused there).
- `GET /health`: 200 `{"status": "ok"}`.

Not implemented (Bridge's cost, not the reference's): authentication, mentions
(`mentions` is always `[]`), senders, broadcasts, idempotency, storage and
resume (so `subscribed.recovered` is false when `since` is behind the topic's
`seq`: nothing is replayed), topic namespaces and their policies (every
well-formed topic outside `user:` may be subscribed to and pushed to),
membership, topic presence and `join`/`leave`, client publishing to topics,
presence across processes, connection limits, server heartbeats, rate limits,
metrics; for streams, their owners (a stream id is everyone's), limits, idle
timeout and the checks of a stream's state. It runs under daphne or uvicorn:
`python -m bench.run` runs it under both (the uvicorn one is the headline's
anchor, the daphne one isolates the server's share); with `--server S`, one
reference under S, as Bridge.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

Send = Callable[[dict], Awaitable[None]]

HEARTBEAT_INTERVAL = 30
MAX_BATCH = 1000
MAX_BODY_BYTES = 1 << 20
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
EVENT = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
# SPEC §8: `<namespace>:<name>`; the namespace `user` is reserved.
TOPIC = re.compile(
    r"^(?P<ns>[a-z][a-z0-9_-]{0,31}):[A-Za-z0-9_.@=-][A-Za-z0-9_.:@=-]{0,127}$"
)
STREAM_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_SUBSCRIPTIONS = 100  # per connection, BRIDGE_MAX_SUBSCRIPTIONS' default

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_PONG_PREFIX = '{"type":"pong","timestamp":"'

# user id -> the `send` callables of that user's open WebSocket connections
connections: dict[str, set[Send]] = {}
# user id -> last seq handed out
seqs: dict[str, int] = {}
# topic -> the `send` callables of the connections subscribed to it
subscribers: dict[str, set[Send]] = {}
# topic -> last seq handed out (the topic's own sequence, SPEC §8)
topic_seqs: dict[str, int] = {}
# stream id -> an open streamed message (SPEC §9); removed by its final part
streams: dict[str, Stream] = {}


class Stream:
    __slots__ = ("event", "id", "index", "parts", "persist", "targets")

    def __init__(self, targets: list[str] | str, event: str, persist: bool) -> None:
        self.id = str(uuid.uuid4())
        self.targets = targets
        self.event = event
        self.persist = persist
        self.index = 0  # the next part's
        self.parts: list[str] = []


def now_text() -> str:
    """ISO-8601 UTC with milliseconds and a Z (SPEC preamble)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Invalid(ValueError):
    def __init__(self, message: str, detail: dict | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


async def application(scope: dict, receive: Callable, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        await _http(scope, receive, send)
    elif kind == "websocket":
        await _websocket(scope, receive, send)
    elif kind == "lifespan":  # daphne sends none; other servers may
        while True:
            event = (await receive())["type"]
            if event == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


# --- WebSocket ------------------------------------------------------------------


async def _websocket(scope: dict, receive: Callable, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    if scope["path"] != "/ws":
        await _refuse(send, "not_found", "no such WebSocket endpoint", 4404)
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    user_id = (query.get("user_id") or [""])[0]
    if not USER_ID.match(user_id):
        await _refuse(send, "bad_request", "invalid user_id", 4400)
        return
    await send(
        {
            "type": "websocket.send",
            "text": _dumps(
                {
                    "type": "connected",
                    "connection_id": uuid.uuid4().hex,
                    "user_id": user_id,
                    "server_time": now_text(),
                    "heartbeat_interval": HEARTBEAT_INTERVAL,
                    "last_seq": 0,
                }
            ),
        }
    )
    mine = connections.setdefault(user_id, set())
    mine.add(send)
    topics: set[str] = set()  # this connection's subscriptions
    try:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            text = event.get("text")
            if text is None or not ('"ping"' in text or 'subscribe"' in text):
                continue  # pong, ack, anything else: ignored
            try:
                frame = json.loads(text)
            except ValueError:
                continue
            if not isinstance(frame, dict):
                continue
            kind = frame.get("type")
            if kind == "ping":
                pong = _PONG_PREFIX + now_text() + '"}'
                await send({"type": "websocket.send", "text": pong})
            elif kind in ("subscribe", "unsubscribe"):
                reply = _subscription(frame, send, topics)
                await send({"type": "websocket.send", "text": _dumps(reply)})
    finally:
        mine.discard(send)
        if not mine and connections.get(user_id) is mine:
            del connections[user_id]
        for topic in topics:
            _leave(topic, send)


def _subscription(frame: dict, send: Send, topics: set[str]) -> dict:
    """The reply to a `subscribe` or `unsubscribe` frame (SPEC §8), after
    joining or leaving; an `error` frame carrying `ref` and `topic` when refused."""
    kind, topic, ref = frame["type"], frame.get("topic"), frame.get("ref")
    since = frame.get("since")
    problem = None
    if not isinstance(topic, str) or not (match := TOPIC.match(topic)):
        problem = ("invalid_frame", "'topic' must be <namespace>:<name>")
    elif match["ns"] == "user":
        problem = ("forbidden", "the namespace 'user' is reserved")
    elif since is not None and (
        isinstance(since, bool) or not isinstance(since, int) or since < 0
    ):
        problem = ("invalid_frame", "'since' must be an integer >= 0")
    elif (
        kind == "subscribe" and topic not in topics and len(topics) >= MAX_SUBSCRIPTIONS
    ):
        problem = ("too_many_subscriptions", "too many subscriptions")
    if problem is not None:
        error = {"type": "error", "code": problem[0], "message": problem[1]}
        if isinstance(ref, str):
            error["ref"] = ref
        if isinstance(topic, str):
            error["topic"] = topic
        return error
    reply: dict = {"type": f"{kind}d", "topic": topic}
    if kind == "subscribe":
        topics.add(topic)
        subscribers.setdefault(topic, set()).add(send)
        seq = topic_seqs.get(topic, 0)
        reply.update(seq=seq, recovered=since is None or since >= seq)
    else:
        if topic in topics:
            topics.discard(topic)
            _leave(topic, send)
        reply["reason"] = "client"
    if isinstance(ref, str):
        reply["ref"] = ref
    return reply


def _leave(topic: str, send: Send) -> None:
    live = subscribers.get(topic)
    if live is not None:
        live.discard(send)
        if not live:
            del subscribers[topic]


async def _refuse(send: Send, code: str, message: str, close_code: int) -> None:
    frame = _dumps({"type": "error", "code": code, "message": message})
    await send({"type": "websocket.send", "text": frame})
    await send({"type": "websocket.close", "code": close_code})


# --- HTTP -----------------------------------------------------------------------


async def _http(scope: dict, receive: Callable, send: Send) -> None:
    method, path = scope["method"], scope["path"]
    if path == "/health":
        if method != "GET":
            await _error(send, 405, "method_not_allowed", "use GET")
        else:
            await _reply(send, 200, b'{"status":"ok"}')
        return
    if path not in ("/sse/push", "/sse/push/batch"):
        await _error(send, 404, "not_found", "no such endpoint")
        return
    if method != "POST":
        await _error(send, 405, "method_not_allowed", "use POST")
        return
    body = await _read_body(receive)
    if body is None:
        await _error(send, 413, "too_large", "body too large")
        return
    try:
        payload = json.loads(body)
        if path == "/sse/push":
            pushes = [_validate(payload)]
        else:
            items = payload.get("messages") if isinstance(payload, dict) else None
            if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
                raise Invalid(f"'messages' must be a list of 1 to {MAX_BATCH} pushes")
            pushes = []
            for index, item in enumerate(items):
                try:
                    if isinstance(item, dict) and "stream_id" in item:
                        raise Invalid("a streamed part goes one per request")
                    pushes.append(_validate(item))
                except Invalid as exc:
                    errors = {"non_field_errors": [str(exc)]}
                    detail = {"messages": {str(index): errors}}
                    raise Invalid(f"messages[{index}]: {exc}", detail) from None
    except ValueError as exc:  # Invalid, or not JSON
        await _error(send, 400, "invalid", str(exc), getattr(exc, "detail", {}))
        return
    replies = [
        await (_deliver_part(push) if isinstance(push, Part) else _deliver(*push))
        for push in pushes
    ]
    reply = replies[0] if path == "/sse/push" else {"results": replies}
    await _reply(send, 202, _dumps(reply).encode())


async def _read_body(receive: Callable) -> bytes | None:
    chunks = []
    size = 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return b""
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not event.get("more_body"):
            return b"".join(chunks)


def _validate(item: Any) -> tuple | Part:
    """A push body -> (user ids or a topic, event, data, persist), or a Part
    for a streamed part; raises Invalid."""
    if not isinstance(item, dict):
        raise Invalid("a push must be a JSON object")
    if "stream_id" in item:
        return _validate_part(item)
    if sum(key in item for key in ("user_id", "user_ids", "topic")) != 1:
        raise Invalid("give exactly one of 'user_id', 'user_ids' or 'topic'")
    targets: list[str] | str
    if "topic" in item:
        targets = item["topic"]
        if not isinstance(targets, str) or not (match := TOPIC.match(targets)):
            raise Invalid("'topic' must be <namespace>:<name>")
        if match["ns"] == "user":
            raise Invalid("the namespace 'user' is reserved")
    else:
        targets = [item["user_id"]] if "user_id" in item else item["user_ids"]
        if (
            not isinstance(targets, list)
            or not 1 <= len(targets) <= 1000
            or not all(isinstance(t, str) and USER_ID.match(t) for t in targets)
            or len(set(targets)) != len(targets)
        ):
            raise Invalid("'user_id'/'user_ids' must be 1 to 1000 distinct user ids")
    if ("data" in item) == ("message" in item):
        raise Invalid("give exactly one of 'data' or 'message'")
    if "message" in item:
        if not isinstance(item["message"], str):
            raise Invalid("'message' must be a string")
        data = {"text": item["message"]}
    else:
        data = item["data"]
    event = item.get("event", "message")
    if not isinstance(event, str) or not EVENT.match(event):
        raise Invalid("invalid 'event'")
    persist = item.get("persist", True)
    if not isinstance(persist, bool):
        raise Invalid("'persist' must be a boolean")
    return targets, event, data, persist


@dataclass(frozen=True, slots=True)
class Part:
    """One validated part of a streamed message (SPEC §9)."""

    targets: list[str] | str
    event: str
    persist: bool
    stream_id: str
    delta: str
    final: bool
    data: dict


def _validate_part(item: dict) -> Part:
    stream_id = item["stream_id"]
    if not isinstance(stream_id, str) or not STREAM_ID.match(stream_id):
        raise Invalid("invalid 'stream_id'")
    if "user_ids" in item or "message" in item:
        raise Invalid("a streamed part goes to one 'user_id' or 'topic', with 'delta'")
    final = item.get("final", False)
    if not isinstance(final, bool):
        raise Invalid("'final' must be a boolean")
    delta = item.get("delta", "")
    if not isinstance(delta, str) or (not delta and not final):
        raise Invalid("'delta' must be a non-empty string (or empty on the final part)")
    data = item.get("data", {})
    if not isinstance(data, dict) or (data and not final):
        raise Invalid("'data' is an object, on the final part only")
    rest = {k: v for k, v in item.items() if k not in ("stream_id", "delta", "final")}
    rest["data"] = None
    targets, event, _data, persist = _validate(rest)
    if isinstance(targets, list) and len(targets) != 1:
        raise Invalid("a streamed part goes to one 'user_id' or 'topic'")
    return Part(targets, event, persist, stream_id, delta, final, data)


async def _deliver_part(part: Part) -> dict:
    """Send one part of a streamed message at once (a `stream` frame encoded
    once, to every connection of the user or subscriber of the topic); on the
    final part, the whole message once. The first part fixes target, event and
    persist."""
    stream_id, delta, final = part.stream_id, part.delta, part.final
    stream = streams.get(stream_id)
    if stream is None:
        stream = streams[stream_id] = Stream(part.targets, part.event, part.persist)
    index = None
    if delta:
        index = stream.index
        stream.index += 1
        stream.parts.append(delta)
        frame: dict = {
            "type": "stream",
            "id": stream.id,
            "stream_id": stream_id,
            "from": None,
        }
        if isinstance(stream.targets, str):
            frame["topic"] = stream.targets
            live = tuple(subscribers.get(stream.targets, ()))
        else:
            frame["to"] = stream.targets[0]
            live = tuple(connections.get(stream.targets[0], ()))
        frame.update(index=index, delta=delta)
        event_out = {"type": "websocket.send", "text": _dumps(frame)}
        for send in live:
            await send(event_out)
    reply: dict = {"id": stream.id, "stream_id": stream_id, "index": index}
    if final:
        del streams[stream_id]
        whole = {**part.data, "text": "".join(stream.parts)}
        pushed = await _deliver(
            stream.targets,
            stream.event,
            whole,
            stream.persist,
            message_id=stream.id,
            stream_id=stream_id,
        )
        reply = {**pushed, **reply}
    reply["final"] = final
    return reply


async def _deliver(
    targets: list[str] | str,
    event: str,
    data: Any,
    persist: bool,
    *,
    message_id: str | None = None,
    stream_id: str | None = None,
) -> dict:
    """Number, encode (once per recipient) and send one push; its reply entry."""
    if isinstance(targets, str):
        return await _deliver_topic(
            targets, event, data, persist, message_id=message_id, stream_id=stream_id
        )
    message_id = message_id or str(uuid.uuid4())
    timestamp = now_text()
    recipients = []
    for user_id in targets:
        seq = None
        if persist:
            seq = seqs[user_id] = seqs.get(user_id, 0) + 1
        live = tuple(connections.get(user_id, ()))
        if live:
            event_out = _message_send(
                message_id, seq, event, data, timestamp, to=user_id, stream_id=stream_id
            )
            for send in live:
                await send(event_out)
        recipients.append(
            {
                "user_id": user_id,
                "seq": seq,
                "online": bool(live),
                "connections": len(live),
            }
        )
    return {"id": message_id, "recipients": recipients}


def _message_send(
    message_id: str,
    seq: int | None,
    event: str,
    data: Any,
    timestamp: str,
    *,
    to: str | None,
    topic: str | None = None,
    stream_id: str | None = None,
) -> dict:
    """One `message` frame (SPEC §3, plus `topic` for a topic, §8, and
    `stream_id` for a streamed message, §9), encoded once as the ASGI send
    event every recipient connection gets."""
    frame = {
        "type": "message",
        "id": message_id,
        "seq": seq,
        "event": event,
        "from": None,
        "to": to,
    }
    if topic is not None:
        frame["topic"] = topic
    frame.update(data=data, timestamp=timestamp, mentions=[])
    if stream_id is not None:
        frame["stream_id"] = stream_id
    return {"type": "websocket.send", "text": _dumps(frame)}


async def _deliver_topic(
    topic: str,
    event: str,
    data: Any,
    persist: bool,
    *,
    message_id: str | None = None,
    stream_id: str | None = None,
) -> dict:
    """Number (the topic's seq), encode once and send one topic push to every
    subscribed connection; its reply entry (SPEC §8)."""
    message_id = message_id or str(uuid.uuid4())
    seq = None
    if persist:
        seq = topic_seqs[topic] = topic_seqs.get(topic, 0) + 1
    live = tuple(subscribers.get(topic, ()))
    if live:
        event_out = _message_send(
            message_id,
            seq,
            event,
            data,
            now_text(),
            to=None,
            topic=topic,
            stream_id=stream_id,
        )
        for send in live:
            await send(event_out)
    return {
        "id": message_id,
        "topic": topic,
        "seq": seq,
        "subscribers": len(live),
        "recipients": [],
    }


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send, status: int, code: str, message: str, detail: dict | None = None
) -> None:
    body = _dumps({"error": code, "message": message, "detail": detail or {}})
    await _reply(send, status, body.encode())
