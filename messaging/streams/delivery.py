"""push and push_batch: store, assign seqs, then send through the channel layer.

The only module that talks to the channel layer. Layer events are sent only
after the transaction that stored the message has committed, so a client can
never receive a message the store does not have (SPEC §5).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError
from redis.exceptions import RedisError

from accounts import selectors
from accounts.mentions import mention_candidates
from bridge_project import redis_health
from messaging import frames, metrics, presence
from messaging.streams import groups, idempotency, store
from messaging.streams.recipients import (
    DIRECT,
    client_message_recipients,
    decide_recipients,
)
from messaging.streams.store import Planned
from messaging.ws_database import run_db

logger = logging.getLogger(__name__)


class LayerUnavailable(Exception):
    """The channel layer (Redis) could not take the events in time."""


@dataclass(frozen=True)
class PushRequest:
    """A validated push, whatever door it came in by."""

    targets: tuple[str, ...]
    event: str
    data: Any
    sender: str | None
    persist: bool = True
    broadcast: bool = False
    # Where mentions are looked for: `message`, i.e. `data.text`.
    text: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class RecipientReceipt:
    user_id: str
    seq: int | None
    via: str
    online: bool
    connections: int


@dataclass(frozen=True)
class PushReceipt:
    message_id: str
    recipients: tuple[RecipientReceipt, ...] = ()
    broadcast: bool = False
    online_users: int = 0
    # The first reply, when this push repeated an idempotency key (SPEC §5).
    replayed: dict[str, Any] | None = None

    def reply(self) -> dict[str, Any]:
        """The push reply of SPEC §6."""
        if self.replayed is not None:
            return self.replayed
        if self.broadcast:
            return {
                "id": self.message_id,
                "broadcast": True,
                "online_users": self.online_users,
            }
        recipients = []
        for r in self.recipients:
            entry: dict[str, Any] = {
                "user_id": r.user_id,
                "seq": r.seq,
                "online": r.online,
                "connections": r.connections,
            }
            if r.via != DIRECT:
                entry["via"] = r.via
            recipients.append(entry)
        return {"id": self.message_id, "recipients": recipients}


@dataclass(frozen=True)
class _Outgoing:
    group: str
    event: dict[str, Any]


@dataclass(frozen=True)
class ClientMessage:
    """A `message` frame typed by a connected user (SPEC §2)."""

    sender: str
    text: str
    data: dict[str, Any] | None
    to: str | None


def push_batch(
    requests: Sequence[PushRequest], *, idempotency_scope: str = "open"
) -> list[PushReceipt]:
    """Store every request in one transaction, then send them all; sync callers.

    A request repeating an idempotency key of `idempotency_scope` is not stored
    or sent again; its receipt replays the first reply. Raises LayerUnavailable
    (nothing stored) when the layer is known to be down."""
    for attempt in (1, 2):
        replays = idempotency.recorded_replies(
            idempotency_scope,
            [r.idempotency_key for r in requests if r.idempotency_key],
        )
        fresh = [r for r in requests if r.idempotency_key not in replays]
        planned = [_plan(request) for request in fresh]
        if planned:
            _refuse_while_redis_is_down()
        # A recorded reply is final, so keyed pushes count connections before
        # storing (one more round trip); others count while publishing.
        keyed = [
            p.request.idempotency_key for p in planned if p.request.idempotency_key
        ]
        counted = _count_blocking(planned) if keyed else None
        try:
            created_at = _store(planned, idempotency_scope, counted or _NOBODY)
            break
        except IntegrityError:
            if attempt == 2:
                raise
            # A concurrent push with the same key committed first: replay it.
    audience = counted or _NOBODY
    if planned:
        outgoing = [item for plan in planned for item in _events(plan, created_at)]
        try:
            sent = _publish_after_commit_blocking(
                outgoing, planned, count=counted is None
            )
        except LayerUnavailable:
            # Nothing was stored (live-only pushes), so nothing was accepted:
            # a retry with the same key must send, not replay.
            idempotency.forget(idempotency_scope, keyed)
            raise
        audience = counted or sent
    metrics.messages_pushed_total.inc(len(planned))
    metrics.batch_size.observe(len(requests))
    receipts = {id(plan.request): _receipt(plan, audience) for plan in planned}
    return [
        receipts[id(request)]
        if id(request) in receipts
        else _replayed(replays[request.idempotency_key])
        for request in requests
    ]


def _refuse_while_redis_is_down() -> None:
    """503 before storing anything: at once while the watch knows Redis is down
    (never a wait on a dead Redis per push), by asking where nothing watches."""
    circuit = redis_health.circuit
    if not redis_health.is_watched() or circuit.probe_due():
        async_to_sync(check_layer)()  # closes the circuit, or raises
    elif circuit.is_open:
        raise LayerUnavailable("Redis is unreachable")


def push(request: PushRequest) -> PushReceipt:
    return push_batch([request])[0]


async def send_client_message(message: ClientMessage) -> PushReceipt:
    """Route, store and send a client's message; raises RoutingRefused or
    LayerUnavailable. The sender gets no copy."""
    circuit = redis_health.circuit
    if not redis_health.is_watched() or circuit.probe_due():
        await check_layer()
    elif circuit.is_open:
        raise LayerUnavailable("Redis is unreachable")
    plan, created_at = await run_db(_plan_and_store_client_message, message)
    audience = await _publish_after_commit(_events(plan, created_at), [plan])
    metrics.messages_pushed_total.inc()
    return _receipt(plan, audience)


def _plan_and_store_client_message(message: ClientMessage):
    recipients = client_message_recipients(
        sender=message.sender,
        sender_is_public=selectors.is_public_account(message.sender),
        to=message.to,
        to_public_handle=(
            selectors.canonical_handle(message.to) if message.to is not None else None
        ),
        mentioned=selectors.resolve_mentions(mention_candidates(message.text)),
    )
    data: dict[str, Any] = {"text": message.text}
    if message.data is not None:
        data["data"] = message.data
    request = PushRequest(
        targets=tuple(r.user_id for r in recipients),
        event="message",
        data=data,
        sender=message.sender,
        text=message.text,
    )
    plan = Planned(request, uuid.uuid4(), recipients)
    return plan, _store([plan])


async def publish(outgoing: Sequence[_Outgoing]) -> None:
    """Send layer events (one pipeline); raise LayerUnavailable past the deadline."""
    redis_health.ensure_watching()
    started_at = time.monotonic()
    layer = get_channel_layer()
    try:
        async with asyncio.timeout(settings.BRIDGE_LAYER_TIMEOUT):
            await layer.group_send_many((item.group, item.event) for item in outgoing)
    except (RedisError, OSError, TimeoutError) as exc:
        raise _layer_failed(exc, started_at) from exc
    redis_health.circuit.close()


def publish_blocking(outgoing: Sequence[_Outgoing]) -> None:
    """publish, for a caller on a worker thread (the push views): the same
    events over the layer's blocking client, with no hand-off to the event
    loop; every read is bounded by BRIDGE_LAYER_TIMEOUT."""
    started_at = time.monotonic()
    layer = get_channel_layer()
    try:
        layer.group_send_many_blocking((item.group, item.event) for item in outgoing)
    except (RedisError, OSError) as exc:
        raise _layer_failed(exc, started_at) from exc
    redis_health.circuit.close()


def _layer_failed(exc: BaseException, started_at: float) -> LayerUnavailable:
    redis_health.circuit.trip(started_at)
    logger.warning("channel layer unavailable: %s", type(exc).__name__)
    return LayerUnavailable(str(exc) or type(exc).__name__)


@dataclass(frozen=True)
class _Audience:
    """Who was connected when the events went out: presence, cluster-wide."""

    connections: dict[str, int]
    online_users: int = 0


_NOBODY = _Audience(connections={})


async def _publish_and_count(
    outgoing: Sequence[_Outgoing], planned: Sequence[Planned], *, count: bool = True
) -> _Audience:
    """Publish, and meanwhile count the recipients' connections (one round trip).

    Counting is informational: if only it fails, the push still succeeded."""
    if not count:
        await publish(outgoing)
        return _NOBODY
    counting = asyncio.ensure_future(_count(planned))
    try:
        await publish(outgoing)
    except LayerUnavailable:
        counting.cancel()
        raise
    return await counting


async def _publish_after_commit(
    outgoing: Sequence[_Outgoing], planned: Sequence[Planned], *, count: bool = True
) -> _Audience:
    """Publish after commit. Stored messages survive a failed publish (they are
    delivered by catch-up), so only a push with nothing stored is refused."""
    try:
        return await _publish_and_count(outgoing, planned, count=count)
    except LayerUnavailable:
        if not _left_for_catch_up(planned):
            raise
        return _NOBODY


def _publish_after_commit_blocking(
    outgoing: Sequence[_Outgoing], planned: Sequence[Planned], *, count: bool = True
) -> _Audience:
    """_publish_after_commit for a worker thread; counts after publishing."""
    try:
        publish_blocking(outgoing)
    except LayerUnavailable:
        if not _left_for_catch_up(planned):
            raise
        return _NOBODY
    return _count_blocking(planned) if count else _NOBODY


def _left_for_catch_up(planned: Sequence[Planned]) -> bool:
    """After a failed publish: whether stored messages remain for catch-up."""
    stored = sum(1 for plan in planned if plan.seqs)
    if stored:
        logger.warning(
            "publish failed after commit; %d stored message(s) go out on catch-up",
            stored,
        )
    return stored > 0


def _counted_users(planned: Sequence[Planned]) -> tuple[list[str], bool]:
    """Whose connections a reply reports, and whether it needs the online count."""
    users = [r.user_id for plan in planned for r in plan.recipients]
    return users, any(plan.request.broadcast for plan in planned)


def _count_blocking(planned: Sequence[Planned]) -> _Audience:
    users, wants_online = _counted_users(planned)
    try:
        counts, online = presence.connection_counts_blocking(
            users, with_online_users=wants_online
        )
    except (RedisError, OSError) as exc:
        logger.warning("presence unavailable for a push reply: %s", type(exc).__name__)
        return _NOBODY
    return _Audience(connections=counts, online_users=online)


async def _count(planned: Sequence[Planned]) -> _Audience:
    users, wants_online = _counted_users(planned)
    try:
        async with asyncio.timeout(settings.BRIDGE_LAYER_TIMEOUT):
            counts = await presence.connection_counts(users)
            online = await presence.online_user_count() if wants_online else 0
    except (RedisError, OSError, TimeoutError) as exc:
        logger.warning("presence unavailable for a push reply: %s", type(exc).__name__)
        return _NOBODY
    return _Audience(connections=counts, online_users=online)


async def disconnect_user(user_id: str) -> None:
    """Ask every instance to close the user's connections (close code 4000)."""
    await publish(
        [_Outgoing(groups.user_group(user_id), {"type": groups.DISCONNECT_EVENT})]
    )


async def check_layer() -> None:
    """Round-trip a real publish through the layer; raises LayerUnavailable."""
    await publish([_Outgoing(groups.HEALTH_GROUP, {"type": "bridge.health"})])


def _plan(request: PushRequest) -> Planned:
    if request.broadcast:
        return Planned(request, uuid.uuid4(), [])
    # The selector answers from a per-process cache: at most one query per
    # batch, however many messages mention someone.
    mentioned = (
        selectors.resolve_mentions(mention_candidates(request.text))
        if request.text
        else []
    )
    recipients = decide_recipients(
        targets=request.targets, mentioned=mentioned, sender=request.sender
    )
    return Planned(request, uuid.uuid4(), recipients)


def _store(
    planned: list[Planned],
    idempotency_scope: str | None = None,
    audience: _Audience | None = None,
):
    """Write messages, inbox entries and idempotency records and assign seqs, in
    one committed transaction (shared with concurrent pushes); returns the push
    time."""
    durable = [p for p in planned if p.request.persist and p.recipients]
    keyed = [plan for plan in planned if plan.request.idempotency_key]
    record_replies = None
    if idempotency_scope is not None and keyed:

        def record_replies() -> None:
            # After save_messages: the recorded replies carry the seqs.
            idempotency.record(
                idempotency_scope,
                {
                    plan.request.idempotency_key: _receipt(
                        plan, audience or _NOBODY
                    ).reply()
                    for plan in keyed
                },
            )

    return store.group_commit.store(durable, record_replies)


def _events(plan: Planned, created_at) -> list[_Outgoing]:
    request = plan.request
    if request.broadcast:
        frame = _frame(plan, created_at, recipient=None, seq=None, mentions=())
        return [_Outgoing(groups.BROADCAST_GROUP, _deliver_event(frame, None))]
    outgoing = []
    for recipient in plan.recipients:
        seq = plan.seqs.get(recipient.user_id)
        frame = _frame(
            plan, created_at, recipient.user_id, seq=seq, mentions=recipient.mentions
        )
        outgoing.append(
            _Outgoing(groups.user_group(recipient.user_id), _deliver_event(frame, seq))
        )
    return outgoing


def _frame(plan, created_at, recipient, *, seq, mentions) -> str:
    return frames.encode(
        frames.message_frame(
            message_id=str(plan.message_id),
            seq=seq,
            event=plan.request.event,
            sender=plan.request.sender,
            recipient=recipient,
            data=plan.request.data,
            created_at=created_at,
            mentions=list(mentions),
        )
    )


def _deliver_event(frame_text: str, seq: int | None) -> dict[str, Any]:
    # The frame travels pre-encoded; user data is never spread into the event,
    # so a `type` inside `data` cannot pick a consumer handler.
    return {"type": groups.DELIVER_EVENT, "seq": seq, "frame": frame_text}


def _replayed(reply: dict[str, Any]) -> PushReceipt:
    return PushReceipt(message_id=reply["id"], replayed=reply)


def _receipt(plan: Planned, audience: _Audience) -> PushReceipt:
    if plan.request.broadcast:
        return PushReceipt(
            message_id=str(plan.message_id),
            broadcast=True,
            online_users=audience.online_users,
        )
    counts = audience.connections
    return PushReceipt(
        message_id=str(plan.message_id),
        recipients=tuple(
            RecipientReceipt(
                user_id=r.user_id,
                seq=plan.seqs.get(r.user_id),
                via=r.via,
                online=counts.get(r.user_id, 0) > 0,
                connections=counts.get(r.user_id, 0),
            )
            for r in plan.recipients
        ),
    )
