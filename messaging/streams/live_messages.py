"""Messages that do not arrive as HTTP pushes, stored and sent like them.

A connected user's `message` frame (SPEC §2, §8), routed by who sent it and to
whom, and the finished message of a stream (SPEC §9), whose parts went out
live first (streams/streaming.py). Both are stored and published by the same
path as a push (streams/delivery.py), one message at a time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from accounts import selectors
from accounts.mentions import mention_candidates
from messaging import metrics
from messaging.streams import delivery
from messaging.streams.after_commit import publish_after_commit
from messaging.streams.delivery import PushRequest
from messaging.streams.publish import refuse_while_redis_is_down
from messaging.streams.receipts import PushReceipt, receipt_for
from messaging.streams.recipients import (
    client_message_recipients,
    decide_recipients,
    topic_message_recipients,
)
from messaging.streams.store import Planned
from messaging.ws_database import run_db


@dataclass(frozen=True)
class ClientMessage:
    """A `message` frame typed by a connected user (SPEC §2)."""

    sender: str
    text: str
    data: dict[str, Any] | None
    to: str | None
    topic: str | None = None
    # The sending connection's channel: it gets no copy of a topic message.
    channel: str = ""


async def send_client_message(message: ClientMessage) -> PushReceipt:
    """Route, store and send a client's message; raises RoutingRefused or
    LayerUnavailable. The sender gets no copy."""
    await refuse_while_redis_is_down()
    plan, created_at = await run_db(_plan_and_store_client_message, message)
    audience = await publish_after_commit(delivery.events_for(plan, created_at), [plan])
    metrics.messages_pushed_total.inc()
    delivery.count_topic_messages([plan])
    return receipt_for(plan, audience)


def _plan_and_store_client_message(message: ClientMessage):
    mentioned = selectors.resolve_mentions(mention_candidates(message.text))
    live_only = False
    if message.topic is not None:
        # The consumer checked `client_publish`; the sender's own connection
        # is left out of the topic's audience by `exclude` (SPEC §8).
        recipients = topic_message_recipients(
            sender=message.sender, mentioned=mentioned
        )
        live_only = delivery.topic_is_live_only(message.topic)
    else:
        recipients = _personal_message_recipients(message, mentioned)
    data: dict[str, Any] = {"text": message.text}
    if message.data is not None:
        data["data"] = message.data
    request = PushRequest(
        targets=tuple(r.user_id for r in recipients),
        event="message",
        data=data,
        sender=message.sender,
        persist=not live_only,
        text=message.text,
        topic=message.topic,
    )
    plan = Planned(request, uuid.uuid4(), recipients, exclude=message.channel)
    return plan, delivery.store_planned([plan])


def _personal_message_recipients(message: ClientMessage, mentioned: list[str]):
    return client_message_recipients(
        sender=message.sender,
        sender_is_public=selectors.is_public_account(message.sender),
        to=message.to,
        to_public_handle=(
            selectors.canonical_handle(message.to) if message.to is not None else None
        ),
        mentioned=mentioned,
    )


def plan_streamed(
    *,
    message_id: uuid.UUID,
    sender: str | None,
    event: str,
    data: dict[str, Any],
    to: str | None,
    topic: str | None,
    stream_id: str,
    incomplete: bool,
    persist: bool,
    exclude: str = "",
) -> Planned:
    """The finished message of a stream, to one user or one topic: no mention
    routing (docs/protocol.md), its id the one its parts carried."""
    if topic is not None and delivery.topic_is_live_only(topic):
        persist = False
    request = PushRequest(
        targets=() if to is None else (to,),
        event=event,
        data=data,
        sender=sender,
        persist=persist,
        topic=topic,
        stream_id=stream_id,
        incomplete=incomplete,
    )
    recipients = decide_recipients(targets=request.targets)
    return Planned(request, message_id, recipients, exclude=exclude)


async def store_and_publish(plan: Planned) -> PushReceipt:
    """Store a planned message (unless live-only) and send it. Raises
    DatabaseError (nothing stored) or LayerUnavailable (nothing stored and
    nothing sent; a stored message goes out on catch-up instead)."""
    created_at = await run_db(delivery.store_planned, [plan])
    audience = await publish_after_commit(delivery.events_for(plan, created_at), [plan])
    metrics.messages_pushed_total.inc()
    delivery.count_topic_messages([plan])
    return receipt_for(plan, audience)
