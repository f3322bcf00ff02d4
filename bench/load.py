"""The client side: WebSocket receivers, HTTP pushers and the delivery ledger.

Everything here runs on one asyncio loop in the bench process; the server runs
in its own processes. Times are `time.perf_counter()` of this process, so a
push's send time (embedded in its `data`) and its receive time compare directly.
"""

from __future__ import annotations

import asyncio
import functools
import html
import itertools
import json
import re
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import websockets
from websockets.exceptions import ConnectionClosed

now = time.perf_counter
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_PONG = '{"type":"pong"}'


# --- WebSocket receivers ---------------------------------------------------------


@dataclass(eq=False)
class Conn:
    index: int
    user: str
    url: str
    ws: websockets.ClientConnection | None = None
    handshake_s: float | None = None
    connect_error: str | None = None
    # One entry per `message` frame: (bench id from data, seq, receive time).
    frames: list[tuple[str | None, int | None, float]] = field(default_factory=list)
    other_frames: Counter = field(default_factory=Counter)
    close_code: int | None = None
    closed: bool = False
    reader: asyncio.Task | None = None
    # S6: the topic this connection subscribes to after `connected` (SPEC §8).
    topic: str | None = None
    subscribe_s: float | None = None  # `subscribe` sent -> `subscribed` received
    foreign: int = 0  # topic `message` frames for another topic than `topic`
    # S7: `stream` parts and the streamed messages' finals, in arrival order:
    # ("part", stream_id, index, delta, receive time) and ("final", stream_id).
    streams: list[tuple] = field(default_factory=list)

    @property
    def stream(self) -> str:
        """What this connection receives pushes for: its topic, else its user."""
        return self.topic if self.topic is not None else self.user


class ClientPool:
    """C connections over U users, spread round-robin over the server's URLs.

    With `topic`, each connection also subscribes to that topic once connected
    (SPEC §8) and counts as open only when `subscribed` came back."""

    def __init__(
        self,
        ws_urls: Sequence[str],
        users: Sequence[str],
        connections: int,
        *,
        connect_concurrency: int = 100,
        open_timeout: float = 30.0,
        topic: str | None = None,
        queries: dict[str, str] | None = None,
    ) -> None:
        """`queries`: the `/ws` query string per user (a token in token mode,
        Target.ws_query); default `user_id=<user>` (open mode)."""
        self.users = list(users)
        self.conns = []
        for i in range(connections):
            user = self.users[i % len(self.users)]
            query = queries[user] if queries else f"user_id={user}"
            url = f"{ws_urls[i % len(ws_urls)]}/ws?{query}"
            self.conns.append(Conn(index=i, user=user, url=url, topic=topic))
        self.connect_concurrency = connect_concurrency
        self.open_timeout = open_timeout
        self.received = 0  # message frames, all connections

    @property
    def open_conns(self) -> list[Conn]:
        return [conn for conn in self.conns if conn.ws is not None]

    def connections_per_user(self) -> Counter:
        """Connections that completed the handshake, by user."""
        return Counter(conn.user for conn in self.open_conns)

    def connections_per_stream(self) -> Counter:
        """Connections that completed the handshake (and subscription), by what
        they receive: the topic for subscribers, else the user."""
        return Counter(conn.stream for conn in self.open_conns)

    async def open(self) -> None:
        gate = asyncio.Semaphore(self.connect_concurrency)

        async def one(conn: Conn) -> None:
            async with gate:
                await self._connect(conn)

        await asyncio.gather(*(one(conn) for conn in self.conns))

    async def connect(self, conn: Conn) -> None:
        """Open one caller-built connection (bench/soak.py's resuming clients);
        on failure `conn.ws` stays None and `conn.connect_error` says why."""
        await self._connect(conn)

    async def _connect(self, conn: Conn) -> None:
        started = now()
        try:
            ws = await websockets.connect(
                conn.url,
                open_timeout=self.open_timeout,
                ping_interval=None,  # Bridge has its own heartbeat; we answer it
                close_timeout=5,
                compression=None,
                max_size=2**20,
            )
        except Exception as exc:  # any failure is a result to count, not a crash
            conn.connect_error = type(exc).__name__
            return
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), self.open_timeout))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            conn.connect_error = f"closed {code}"
            return
        except (TimeoutError, ValueError) as exc:
            conn.connect_error = type(exc).__name__
            await ws.close()
            return
        if first.get("type") != "connected":
            conn.connect_error = f"{first.get('type')} {first.get('code', '')}".strip()
            await ws.close()
            return
        conn.handshake_s = now() - started
        if conn.topic is not None and not await self._subscribe(conn, ws):
            await ws.close()
            return
        conn.ws = ws
        conn.reader = asyncio.create_task(self._read(conn))

    async def _subscribe(self, conn: Conn, ws: websockets.ClientConnection) -> bool:
        """Send `subscribe` for conn.topic and wait for its `subscribed`; on
        refusal, record why in conn.connect_error (`subscribe <error code>`, e.g.
        `subscribe not_found` for an unknown namespace) and return False."""
        started = now()
        await ws.send(_dumps({"type": "subscribe", "topic": conn.topic, "ref": "s"}))
        deadline = started + self.open_timeout
        try:
            while True:
                raw = await asyncio.wait_for(ws.recv(), max(0.0, deadline - now()))
                frame = json.loads(raw)
                kind = frame.get("type") if isinstance(frame, dict) else None
                if kind == "subscribed" and frame.get("topic") == conn.topic:
                    conn.subscribe_s = now() - started
                    return True
                if kind == "error":
                    conn.connect_error = f"subscribe {frame.get('code')}"
                    return False
                if kind == "ping":
                    await ws.send(_PONG)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            conn.connect_error = f"subscribe: closed {code}"
        except (TimeoutError, ValueError) as exc:
            conn.connect_error = f"subscribe {type(exc).__name__}"
        return False

    async def _read(self, conn: Conn) -> None:
        ws = conn.ws
        assert ws is not None
        frames = conn.frames
        loads = json.loads
        try:
            async for raw in ws:
                received_at = now()
                frame = loads(raw)
                kind = frame.get("type")
                if kind == "stream":
                    if conn.topic is not None and frame.get("topic") != conn.topic:
                        conn.foreign += 1
                        continue
                    conn.streams.append(
                        (
                            "part",
                            frame.get("stream_id"),
                            frame.get("index"),
                            frame.get("delta"),
                            received_at,
                        )
                    )
                    self.received += 1
                elif kind == "message":
                    if conn.topic is not None and frame.get("topic") != conn.topic:
                        conn.foreign += 1
                        continue
                    data = frame.get("data")
                    bid = data.get("bid") if isinstance(data, dict) else None
                    frames.append((bid, frame.get("seq"), received_at))
                    if "stream_id" in frame:
                        conn.streams.append(("final", frame["stream_id"]))
                    self.received += 1
                elif kind == "ping":
                    conn.other_frames["ping"] += 1
                    await ws.send(_PONG)
                else:
                    conn.other_frames[kind] += 1
        except ConnectionClosed as closed:
            conn.close_code = closed.rcvd.code if closed.rcvd else None
        else:
            conn.close_code = ws.close_code
        conn.closed = True

    def closed_by_server(self) -> Counter:
        """Connections that ended before we closed them, by close code."""
        return Counter(str(conn.close_code) for conn in self.open_conns if conn.closed)

    async def close(self) -> None:
        gate = asyncio.Semaphore(200)

        async def one(conn: Conn) -> None:
            async with gate:
                assert conn.ws is not None
                try:
                    await asyncio.wait_for(conn.ws.close(), 10)
                except (TimeoutError, OSError, ConnectionClosed):
                    conn.ws.transport.abort()

        open_now = [conn for conn in self.open_conns if not conn.closed]
        await asyncio.gather(*(one(conn) for conn in open_now))
        readers = [conn.reader for conn in self.open_conns if conn.reader]
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


# --- the ledger -------------------------------------------------------------------


@dataclass
class Ledger:
    """What was pushed and how the server answered."""

    # bench id -> (target user, send time) for every push the server accepted (202)
    accepted: dict[str, tuple[str, float]] = field(default_factory=dict)
    # bench id -> status, for every push whose request did not answer 202
    rejected: dict[str, str] = field(default_factory=dict)
    attempted: int = 0  # messages we tried to push
    requests: int = 0
    replies: Counter = field(default_factory=Counter)  # "202", "500", "ReadTimeout"...
    reply_latency: list[float] = field(default_factory=list)  # per request, s
    send_lag: list[float] = field(default_factory=list)  # open loop: late vs schedule
    first_send: float | None = None
    last_send: float | None = None
    last_reply: float | None = None
    sample_errors: dict[str, str] = field(default_factory=dict)  # status -> one body
    # Topic pushes (S6): bench id -> the topic `seq` its 202 reply gave, and the
    # reply's `subscribers` count, one per accepted push (SPEC §8).
    topic_seqs: dict[str, int | None] = field(default_factory=dict)
    subscribers: list[int] = field(default_factory=list)
    # Streamed messages (S7): stream id -> the send time of each part the
    # server accepted, in order (part i is index i); a stream whose part was
    # refused stops there, without its final part. The final part's message
    # is in `accepted` under the stream id, like a push.
    stream_parts: dict[str, list[float]] = field(default_factory=dict)
    # Parts whose 202 reply gave another `index` than their place in the stream.
    part_index_mismatches: int = 0

    def record(self, status: str, items: list[tuple[str, str]], sent: float) -> None:
        done = now()
        self.requests += 1
        self.replies[status] += 1
        self.reply_latency.append(done - sent)
        if self.last_reply is None or done > self.last_reply:
            self.last_reply = done
        if status == "202":
            for bid, user in items:
                self.accepted[bid] = (user, sent)
        else:
            for bid, _user in items:
                self.rejected[bid] = status


def _push_body(
    items: list[tuple[str, str]], sent: float, batch: bool, target_key: str
) -> bytes:
    bodies = [
        {target_key: target, "event": "bench", "data": {"bid": bid, "t": sent}}
        for bid, target in items
    ]
    return _dumps({"messages": bodies} if batch else bodies[0]).encode()


async def _post(
    client: httpx.AsyncClient,
    url: str,
    items: list[tuple[str, str]],
    sent: float,
    batch: bool,
    ledger: Ledger,
    target_key: str = "user_id",
) -> None:
    """One push request; target_key is `user_id`, or `topic` for topic pushes."""
    path = "/sse/push/batch" if batch else "/sse/push"
    try:
        reply = await client.post(
            url + path,
            content=_push_body(items, sent, batch, target_key),
            headers={"Content-Type": "application/json"},
        )
    except httpx.HTTPError as exc:
        status = type(exc).__name__
        ledger.sample_errors.setdefault(status, str(exc)[:300])
    else:
        status = str(reply.status_code)
        if status != "202" and status not in ledger.sample_errors:
            ledger.sample_errors[status] = one_line(reply.text)
        if status == "202" and target_key == "topic":
            _record_topic_reply(ledger, items, reply.text, batch)
    ledger.record(status, items, sent)


def _record_topic_reply(
    ledger: Ledger, items: list[tuple[str, str]], body: str, batch: bool
) -> None:
    """Keep each topic push's `seq` and `subscribers` from its 202 reply
    (`{"id", "topic", "seq", "subscribers", "recipients"}`, SPEC §8)."""
    try:
        parsed = json.loads(body)
        replies = parsed["results"] if batch else [parsed]
    except (ValueError, KeyError, TypeError):
        ledger.sample_errors.setdefault("202 unreadable", one_line(body))
        return
    for (bid, _topic), one in zip(items, replies, strict=False):
        if not isinstance(one, dict):
            continue
        ledger.topic_seqs[bid] = one.get("seq")
        if isinstance(one.get("subscribers"), int):
            ledger.subscribers.append(one["subscribers"])


def one_line(body: str) -> str:
    """A reply body as one short line; for Django's debug page, the exception."""
    title = re.search(r"<title>(.*?)</title>", body, re.S | re.I)
    if title:
        value = re.search(r'class="exception_value">(.*?)</pre>', body, re.S)
        body = title.group(1) + (": " + html.unescape(value.group(1)) if value else "")
    return " ".join(body.split())[:300]


class HttpPool:
    """`size` keep-alive HTTP/1.1 connections, each its own one-connection
    `httpx.AsyncClient`, pinned to the server URLs round-robin.

    Not one AsyncClient with `max_connections=size`: httpcore's pool scans all
    its connections (and polls each idle socket) on every request, which is
    quadratic in the pool size; with 50-100 connections the bench process spent
    most of its CPU there and became the bottleneck (encode/httpx#3215,
    encode/httpcore#1035). One connection per client keeps that scan O(1)."""

    def __init__(
        self,
        http_urls: Sequence[str],
        size: int,
        timeout: float,
        headers: dict[str, str] | None = None,
    ) -> None:
        """`headers`: sent with every request (Target.http_headers: an API key
        and proxy headers in token mode)."""
        self.urls = list(http_urls)
        self.clients = [
            (self.urls[i % len(self.urls)], _http_client(timeout, headers))
            for i in range(size)
        ]
        # Free clients per URL, for the open loop (FIFO, so waiting is fair).
        self._free: dict[str, asyncio.Queue] = {u: asyncio.Queue() for u in self.urls}
        for url, client in self.clients:
            self._free[url].put_nowait(client)

    async def acquire(self, url: str) -> httpx.AsyncClient:
        return await self._free[url].get()

    def release(self, url: str, client: httpx.AsyncClient) -> None:
        self._free[url].put_nowait(client)

    async def __aenter__(self) -> HttpPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(client.aclose() for _url, client in self.clients))


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Built once: every AsyncClient would otherwise load the CA bundle again
    # (~0.1 s of CPU each), which for 100 clients is seconds of client CPU.
    return ssl.create_default_context()


def _http_client(
    timeout: float, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers=headers,
        http1=True,
        http2=False,
        verify=_ssl_context(),
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=120
        ),
    )


def _item(tag: str, index: int, users: Sequence[str]) -> tuple[str, str]:
    """Push number `index`: its unique bench id and its target, round-robin."""
    return f"{tag}-{index}", users[index % len(users)]


async def closed_loop(
    pool: HttpPool,
    users: Sequence[str],
    *,
    tag: str,
    messages: int,
    batch: int | None,
    ledger: Ledger,
    target_key: str = "user_id",
) -> None:
    """One worker per connection of `pool`, each sending its next request when
    the last replied (so concurrency = pool size).

    Worker w keeps its connection to server URL w % N. batch=None: one
    POST /sse/push per message; otherwise POST /sse/push/batch with up to
    `batch` messages each. `users` are the targets, user ids or (with
    target_key="topic") topics."""
    per_request = batch or 1
    requests = -(-messages // per_request)
    next_request = itertools.count()

    async def worker(url: str, client: httpx.AsyncClient) -> None:
        for number in next_request:
            if number >= requests:
                return
            first = number * per_request
            items = [
                _item(tag, index, users)
                for index in range(first, min(messages, first + per_request))
            ]
            sent = now()
            if ledger.first_send is None:
                ledger.first_send = sent
            ledger.attempted += len(items)
            await _post(client, url, items, sent, batch is not None, ledger, target_key)

    await asyncio.gather(*(worker(url, client) for url, client in pool.clients))


async def open_loop(
    pool: HttpPool,
    users: Sequence[str],
    *,
    tag: str,
    rate: float,
    duration: float,
    ledger: Ledger,
) -> None:
    """Single pushes scheduled at fixed times (i / rate), whatever the replies do.

    Push i goes to server URL i % N on the first free connection of `pool` to
    it. The `t` a push carries is its scheduled time, so time spent waiting for
    a free connection or behind a slow server counts as latency (no coordinated
    omission)."""
    total = int(rate * duration)
    tasks = []
    urls = pool.urls

    async def send(url: str, item: tuple[str, str], due: float) -> None:
        client = await pool.acquire(url)
        try:
            await _post(client, url, [item], due, False, ledger)
        finally:
            pool.release(url, client)

    start = now() + 0.05
    ledger.first_send = start
    for index in range(total):
        due = start + index / rate
        delay = due - now()
        if delay > 0:
            await asyncio.sleep(delay)
        ledger.send_lag.append(max(0.0, now() - due))
        ledger.attempted += 1
        url = urls[index % len(urls)]
        tasks.append(asyncio.create_task(send(url, _item(tag, index, users), due)))
    ledger.last_send = now()
    await asyncio.gather(*tasks)


def _part_body(
    topic: str, stream_id: str, index: int, sent: float, final: bool
) -> bytes:
    """Part `index` of a streamed message to `topic` (SPEC §9 over HTTP). The
    `delta` carries the part's number and send time (`<index>@<t>;`), so the
    joined text is checkable and each part's latency measurable; the final part
    carries `data` {bid: stream id, t}, which the stored message keeps."""
    body: dict = {
        "topic": topic,
        "stream_id": stream_id,
        "event": "bench",
        "delta": f"{index}@{sent:.6f};",
    }
    if final:
        body["final"] = True
        body["data"] = {"bid": stream_id, "t": sent}
    return _dumps(body).encode()


async def stream_loop(
    pool: HttpPool,
    topic: str,
    *,
    tag: str,
    streams: int,
    parts: int,
    ledger: Ledger,
) -> None:
    """`streams` streamed messages of `parts` parts each to `topic`, one worker
    per connection of `pool`: a worker sends one stream's parts one after the
    other (each when the previous one answered, the way a producer streams a
    reply), the last with `final: true`, then takes the next stream. So the
    pool size is the number of streams in flight (Bridge allows
    BRIDGE_MAX_OPEN_STREAMS, default 10, per API key)."""
    next_stream = itertools.count()

    async def one_stream(url: str, client: httpx.AsyncClient, number: int) -> None:
        stream_id = f"{tag}-{number}"
        accepted = ledger.stream_parts.setdefault(stream_id, [])
        for index in range(parts):
            final = index == parts - 1
            sent = now()
            if ledger.first_send is None:
                ledger.first_send = sent
            ledger.attempted += 1
            body = _part_body(topic, stream_id, index, sent, final)
            status, text = await _send(client, url + "/sse/push", body)
            if status != "202" and status not in ledger.sample_errors:
                ledger.sample_errors[status] = one_line(text)
            if final:
                if status == "202":
                    _record_topic_reply(ledger, [(stream_id, topic)], text, False)
                ledger.record(status, [(stream_id, topic)], sent)
            else:
                ledger.record(status, [], sent)
            if status != "202":
                return  # the stream ends here (the server finishes it later)
            accepted.append(sent)
            try:
                if json.loads(text).get("index") != index:
                    ledger.part_index_mismatches += 1
            except (ValueError, AttributeError):
                ledger.part_index_mismatches += 1

    async def worker(url: str, client: httpx.AsyncClient) -> None:
        for number in next_stream:
            if number >= streams:
                return
            await one_stream(url, client, number)

    await asyncio.gather(*(worker(url, client) for url, client in pool.clients))


async def _send(client: httpx.AsyncClient, url: str, body: bytes) -> tuple[str, str]:
    """POST one JSON body: (status or exception name, reply text)."""
    try:
        reply = await client.post(
            url, content=body, headers={"Content-Type": "application/json"}
        )
    except httpx.HTTPError as exc:
        return type(exc).__name__, str(exc)[:300]
    return str(reply.status_code), reply.text


async def drain(
    pool: ClientPool, expected: int, *, quiet_for: float, poll: float = 0.05
) -> None:
    """Wait until `expected` message frames arrived, or none arrived for `quiet_for`."""
    last_count = pool.received
    last_progress = now()
    while pool.received < expected:
        await asyncio.sleep(poll)
        if pool.received != last_count:
            last_count = pool.received
            last_progress = now()
        elif now() - last_progress >= quiet_for:
            return


# --- analysis -----------------------------------------------------------------------


@dataclass
class Deliveries:
    expected: int = 0
    delivered: int = 0  # expected deliveries that arrived (first copy)
    lost: int = 0
    duplicates: int = 0  # further copies of an expected delivery
    # Topic deliveries whose `seq` is not the one the push's reply gave.
    seq_mismatches: int = 0
    unexpected: int = 0  # frames for pushes not accepted or for another user
    # of those: frames of pushes whose request answered non-202, by that status
    delivered_rejected: Counter = field(default_factory=Counter)
    rejected_pushes_seen: set = field(default_factory=set)
    seq_errors: int = 0  # seq not greater than the previous one on a connection
    seq_gaps: int = 0  # seq more than one above the previous one
    latencies: list[float] = field(default_factory=list)  # s, one per delivery
    last_receive: float | None = None
    lost_by_user: Counter = field(default_factory=Counter)


def expected_deliveries(ledger: Ledger, per_user: Counter) -> int:
    return sum(per_user[user] for user, _sent in ledger.accepted.values())


def reconcile(ledger: Ledger, pool: ClientPool) -> Deliveries:
    """Expected deliveries: every accepted push, once on each connection of its
    user, or of its topic for subscribers (S6).

    On a subscriber a delivery is identified by (topic, seq) as well as by its
    bench id: a second frame with either is a duplicate, and a `seq` other than
    the one the push's reply gave counts in `seq_mismatches`."""
    result = Deliveries()
    per_user = pool.connections_per_stream()
    result.expected = expected_deliveries(ledger, per_user)
    accepted = ledger.accepted
    topic_seqs = ledger.topic_seqs
    received_by_user: dict[str, Counter] = {}
    for conn in pool.open_conns:
        seen: set[str] = set()
        seen_topic_seqs: set[int] = set()
        previous_seq = None
        stream = conn.stream
        result.unexpected += conn.foreign
        for bid, seq, received_at in conn.frames:
            if seq is not None:
                if previous_seq is not None:
                    if seq <= previous_seq:
                        result.seq_errors += 1
                    elif seq > previous_seq + 1:
                        result.seq_gaps += 1
                previous_seq = seq
            if result.last_receive is None or received_at > result.last_receive:
                result.last_receive = received_at
            entry = accepted.get(bid) if bid is not None else None
            if entry is None or entry[0] != stream:
                result.unexpected += 1
                if bid in ledger.rejected:
                    result.delivered_rejected[ledger.rejected[bid]] += 1
                    result.rejected_pushes_seen.add(bid)
                continue
            if conn.topic is not None and seq is not None:
                if bid in seen or seq in seen_topic_seqs:
                    result.duplicates += 1
                    continue
                seen_topic_seqs.add(seq)
                if bid in topic_seqs and topic_seqs[bid] != seq:
                    result.seq_mismatches += 1
            elif bid in seen:
                result.duplicates += 1
                continue
            seen.add(bid)
            result.delivered += 1
            result.latencies.append(received_at - entry[1])
        received_by_user.setdefault(stream, Counter()).update(seen)
    result.lost = result.expected - result.delivered
    if result.lost:
        for bid, (user, _sent) in accepted.items():
            missing = per_user[user] - received_by_user.get(user, Counter())[bid]
            if missing > 0:
                result.lost_by_user[user] += missing
    return result


@dataclass
class StreamDeliveries:
    """Parts of streamed messages (S7), checked on every subscriber: indexes
    0..n-1 of each stream in order with no gap or duplicate, each `delta` the
    one sent for that index, then the stream's one final `message`."""

    expected: int = 0  # parts accepted x connections subscribed
    delivered: int = 0  # distinct expected parts received
    lost: int = 0
    duplicates: int = 0  # an index received again on a connection
    out_of_order: int = 0  # an index that is not the previous one + 1
    wrong_delta: int = 0  # a part whose delta is not the one sent for its index
    final_early: int = 0  # the final message before the stream's last part
    unexpected: int = 0  # parts of streams the bench did not send
    latencies: list[float] = field(default_factory=list)  # s, one per part
    last_receive: float | None = None


def reconcile_streams(ledger: Ledger, pool: ClientPool) -> StreamDeliveries:
    result = StreamDeliveries()
    sent = ledger.stream_parts
    conns = pool.open_conns
    result.expected = sum(len(times) for times in sent.values()) * len(conns)
    for conn in conns:
        previous: dict[str, int] = {}
        seen: dict[str, set[int]] = {}
        for entry in conn.streams:
            stream_id = entry[1]
            if entry[0] == "final":
                if stream_id in sent and len(seen.get(stream_id, ())) < len(
                    sent[stream_id]
                ):
                    result.final_early += 1
                continue
            _kind, _sid, index, delta, received_at = entry
            times = sent.get(stream_id)
            if times is None or not isinstance(index, int):
                result.unexpected += 1
                continue
            mine = seen.setdefault(stream_id, set())
            if index in mine:
                result.duplicates += 1
                continue
            if index != previous.get(stream_id, -1) + 1:
                result.out_of_order += 1
            previous[stream_id] = index
            if index >= len(times):
                result.unexpected += 1
                continue
            if delta != f"{index}@{times[index]:.6f};":
                result.wrong_delta += 1
            mine.add(index)
            result.delivered += 1
            result.latencies.append(received_at - times[index])
            if result.last_receive is None or received_at > result.last_receive:
                result.last_receive = received_at
    result.lost = result.expected - result.delivered
    return result


def percentiles(
    values: Sequence[float], points: Sequence[int] = (50, 95, 99)
) -> dict[str, float | None]:
    """Nearest-rank percentiles plus max and mean; None when there are no values."""
    if not values:
        return {**{f"p{p}": None for p in points}, "max": None, "mean": None}
    ordered = sorted(values)
    count = len(ordered)
    found: dict[str, float | None] = {}
    for point in points:
        rank = max(1, -(-point * count // 100))
        found[f"p{point}"] = ordered[rank - 1]
    found["max"] = ordered[-1]
    found["mean"] = sum(ordered) / count
    return found
