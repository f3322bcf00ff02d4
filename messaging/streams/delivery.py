"""push and push_batch: store, assign seqs, then publish (SPEC §5, §6, §8).

A push goes to users' personal streams (`user_id`, `user_ids`), to a topic, or
to everyone (broadcast). Layer events are published (streams/publish.py) only
after the transaction that stored the message has committed, so a client can
never receive a message the store does not have.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from django.db import IntegrityError

from accounts import selectors
from accounts.mentions import mention_candidates
from messaging import frames, metrics
from messaging.streams import groups, idempotency, store
from messaging.streams.after_commit import (
    publish_after_commit,
)
from messaging.streams.loop_commit import loop_commit, on_callers_thread
from messaging.streams.names import (
    parse_topic,
    stream_group,
    stream_owner,
)
from messaging.streams.namespaces import namespace_rules
from messaging.streams.publish import (
    LayerUnavailable,
    Outgoing,
    deliver_event,
    refuse_while_redis_is_down,
)
from messaging.streams.receipts import (
    NOBODY,
    Audience,
    PushReceipt,
    count_audience,
    receipt_for,
    replayed,
)
from messaging.streams.recipients import (
    decide_recipients,
)
from messaging.streams.store import Planned, _Write
from messaging.streams.topics import TopicRefused, topic_rules


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
    # A topic push (SPEC §8): stored once in the topic's stream; `targets` is
    # empty and mentioned bots get personal copies saying where.
    topic: str | None = None
    # The API key that pushed it, which may recall it (SPEC §9).
    pushed_by_key: int | None = None
    # A message sent in parts (SPEC §9): its stream id, and whether the server
    # finished it for want of a final part (streams/streaming.py).
    stream_id: str | None = None
    incomplete: bool = False


class UnknownNamespaces(Exception):
    """Pushes naming topics of namespaces that do not exist (SPEC §8): index
    in the batch -> why. Nothing of the batch was stored or sent."""

    def __init__(self, refusals: dict[int, str]) -> None:
        super().__init__(refusals)
        self.refusals = refusals


async def apush_batch(
    requests: Sequence[PushRequest], *, idempotency_scope: str = "open"
) -> list[PushReceipt]:
    """Store every request in one transaction, then send them all.

    Runs on the event loop: the database work goes to a thread once per group
    of concurrent pushes (streams/loop_commit.py). A request repeating an
    idempotency key of `idempotency_scope` is not stored or sent again; its
    receipt replays the first reply. Raises UnknownNamespaces (nothing
    stored), LayerUnavailable (nothing stored) when the layer is known to be
    down, or DatabaseError."""
    requests = list(requests)
    keyed = any(request.idempotency_key for request in requests)
    for attempt in (1, 2):
        if keyed:
            # A recorded reply is final, so keyed pushes count connections
            # before storing: read and plan, count, then store (two hand-offs).
            (replays, fresh, planned), _ = await loop_commit.run(
                partial(_read_and_plan, requests, idempotency_scope)
            )
            if planned:
                await refuse_while_redis_is_down()
            counted = await count_audience(planned) if planned else None
            prepare = partial(
                _prepared_write, (replays, fresh, planned), idempotency_scope, counted
            )
        else:
            await refuse_while_redis_is_down()
            counted = None
            prepare = partial(_plan_and_write, requests)
        try:
            (replays, fresh, planned), created_at = await loop_commit.run(prepare)
            break
        except IntegrityError:
            if attempt == 2:
                raise
            # A concurrent push with the same key committed first: replay it.
    audience = counted or NOBODY
    if planned:
        outgoing = [item for plan in planned for item in events_for(plan, created_at)]
        try:
            sent = await publish_after_commit(outgoing, planned, count=counted is None)
        except LayerUnavailable:
            # Nothing was stored (live-only pushes), so nothing was accepted:
            # a retry with the same key must send, not replay.
            keys = [p.request.idempotency_key for p in planned]
            await loop_commit.run(partial(_forget, idempotency_scope, keys))
            raise
        audience = counted or sent
    metrics.messages_pushed_total.inc(len(planned))
    count_topic_messages(planned)
    metrics.batch_size.observe(len(requests))
    # By the caller's request: _plan may have replaced it (a live-only topic).
    receipts = {
        id(request): receipt_for(plan, audience)
        for request, plan in zip(fresh, planned, strict=True)
    }
    return [
        receipts[id(request)]
        if id(request) in receipts
        else replayed(replays[request.idempotency_key])
        for request in requests
    ]


def push_batch(
    requests: Sequence[PushRequest], *, idempotency_scope: str = "open"
) -> list[PushReceipt]:
    """apush_batch for sync callers (tests, management commands); its database
    work runs on the caller's thread, inside the caller's transaction."""
    token = on_callers_thread.set(True)
    try:
        return async_to_sync(apush_batch)(requests, idempotency_scope=idempotency_scope)
    finally:
        on_callers_thread.reset(token)


def push(request: PushRequest) -> PushReceipt:
    return push_batch([request])[0]


_Planning = tuple[dict[str, dict[str, Any]], list[PushRequest], list[Planned]]


def _plan_and_write(requests: list[PushRequest]) -> tuple[_Planning, _Write]:
    """On the database thread: plan pushes without idempotency keys."""
    _refuse_unknown_namespaces(requests)
    planned = [_plan(request) for request in requests]
    return ({}, requests, planned), _write_for(planned)


def _read_and_plan(
    requests: list[PushRequest], idempotency_scope: str
) -> tuple[_Planning, None]:
    """On the database thread: the replies recorded for these keys, and a plan
    for every request without one."""
    _refuse_unknown_namespaces(requests)
    replays = idempotency.recorded_replies(
        idempotency_scope, [r.idempotency_key for r in requests if r.idempotency_key]
    )
    fresh = [r for r in requests if r.idempotency_key not in replays]
    return (replays, fresh, [_plan(request) for request in fresh]), None


def _prepared_write(
    planning: _Planning, idempotency_scope: str, audience: Audience | None
) -> tuple[_Planning, _Write]:
    return planning, _write_for(planning[2], idempotency_scope, audience)


def _forget(idempotency_scope: str, keys: list[str | None]) -> tuple[None, None]:
    idempotency.forget(idempotency_scope, [key for key in keys if key])
    return None, None


def _refuse_unknown_namespaces(requests: Sequence[PushRequest]) -> None:
    refusals = {}
    for index, request in enumerate(requests):
        if request.topic is None:
            continue
        try:
            topic_rules(request.topic)
        except TopicRefused as exc:
            refusals[index] = exc.message
    if refusals:
        raise UnknownNamespaces(refusals)


def count_topic_messages(planned: Sequence[Planned]) -> None:
    topic_messages = sum(1 for plan in planned if plan.request.topic is not None)
    if topic_messages:
        metrics.topic_messages_total.inc(topic_messages)


def topic_is_live_only(topic: str) -> bool:
    """history_size 0 (SPEC §8): nothing of it is stored, mention copies
    included, and every copy goes out with `seq: null`."""
    rules = namespace_rules(parse_topic(topic).namespace)
    return rules is None or rules.live_only


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
    if request.topic is not None and topic_is_live_only(request.topic):
        request = replace(request, persist=False)
    return Planned(request, uuid.uuid4(), recipients)


def _write_for(
    planned: list[Planned],
    idempotency_scope: str | None = None,
    audience: Audience | None = None,
) -> _Write:
    """What storing `planned` writes: messages, stream entries (seqs assigned
    when committed) and the idempotency records of keyed pushes."""
    durable = [p for p in planned if p.request.persist and p.copies()]
    keyed = [plan for plan in planned if plan.request.idempotency_key]
    record_replies = None
    if idempotency_scope is not None and keyed:

        def record_replies() -> None:
            # After save_messages: the recorded replies carry the seqs.
            idempotency.record(
                idempotency_scope,
                {
                    plan.request.idempotency_key: receipt_for(
                        plan, audience or NOBODY
                    ).reply()
                    for plan in keyed
                },
            )

    return _Write(durable, record_replies)


def store_planned(planned: list[Planned]):
    """Store `planned` in one committed transaction (shared with concurrent
    callers on other threads); returns the push time."""
    write = _write_for(planned)
    return store.group_commit.store(write.durable, write.after_save)


def events_for(plan: Planned, created_at) -> list[Outgoing]:
    """One event per stream the message is in, each to that stream's group: a
    topic message is published once, whatever the number of subscribers."""
    request = plan.request
    if request.broadcast:
        frame = _frame(plan, created_at, recipient=None, seq=None, mentions=())
        event = deliver_event(frame, stream=None, seq=None)
        return [Outgoing(groups.BROADCAST_GROUP, event)]
    outgoing = []
    for stream, mentions in plan.copies():
        seq = plan.seqs.get(stream)
        owner = stream_owner(stream)
        frame = _frame(plan, created_at, owner, seq=seq, mentions=mentions)
        # Only the publishing connection's own topic copy is left out.
        exclude = plan.exclude if owner is None else ""
        event = deliver_event(frame, stream=stream, seq=seq, exclude=exclude)
        outgoing.append(Outgoing(stream_group(stream), event))
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
            topic=plan.request.topic,
            stream_id=plan.request.stream_id,
            incomplete=plan.request.incomplete,
        )
    )
