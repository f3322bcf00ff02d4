"""Messages sent in parts (SPEC §9 streamed messages), whatever door they come
in by: `stream` frames (realtime/inbound.py) or `POST /sse/push` with
`stream_id` (api/stream_views.py).

Each part goes out live at once, in order, with its `index`
(streams/stream_state.py); the final part, or the server when a stream has
been idle for BRIDGE_STREAM_IDLE_TIMEOUT (`finish_due_streams`, run by every
process, realtime/stream_sweeper.py), stores the joined text once as an
ordinary message with the id the parts carried, and sends it like any other:
a connection that missed parts gets the whole message by resume.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError

from messaging import frames
from messaging.streams import live_messages, stream_state
from messaging.streams.names import personal_stream, stream_group, stream_owner
from messaging.streams.publish import LayerUnavailable, refuse_while_redis_is_down
from messaging.streams.receipts import PushReceipt
from messaging.streams.store import Planned
from messaging.streams.stream_state import (  # noqa: F401  (PartRefused: re-exported)
    Claimed,
    PartRefused,
    PartScript,
    Taken,
)
from messaging.ws_database import run_db

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamPart:
    """One part of a streamed message, to one user (`to`) or one topic.

    `scope` is whose stream ids these are: a WebSocket connection's
    (`c.<connection id>`) or an API key's (`k.<key id>`, `open` in open mode);
    BRIDGE_MAX_OPEN_STREAMS counts per scope. The stream's first part fixes its
    target, event, sender and `persist`; `data` (final part only) adds fields
    to the stored message's `data`. `exclude` is the sending connection, which
    gets no copy of a topic stream."""

    scope: str
    stream_id: str
    sender: str | None
    to: str | None
    topic: str | None
    delta: str
    final: bool = False
    data: dict[str, Any] | None = None
    event: str = "message"
    persist: bool = True
    exclude: str = ""


@dataclass(frozen=True)
class PartAccepted:
    """The stream's message id, the part's index (None for an empty delta),
    and on the final part the stored message's receipt (None when another
    process had already stored it)."""

    message_id: str
    index: int | None
    final: bool = False
    receipt: PushReceipt | None = None


async def send_part(part: StreamPart) -> PartAccepted:
    """Send one part live; on the final one store and send the message.
    Raises PartRefused, LayerUnavailable or DatabaseError."""
    await refuse_while_redis_is_down()
    taken = await stream_state.take_part(_script(part), **_limits())
    if taken.text is None:
        return PartAccepted(taken.message_id, taken.index)
    finishing = _finishing(part, taken)
    receipt = await _finish(finishing)
    return PartAccepted(taken.message_id, taken.index, final=True, receipt=receipt)


async def finish_due_streams() -> int:
    """Store and send every stream the server must finish now (idle ones as
    `incomplete`); returns how many. Another process's sweep never finishes
    the same stream: claiming is atomic in Redis."""
    finished = 0
    for claimed in await stream_state.claim_due():
        try:
            await _finish(claimed)
        except (DatabaseError, LayerUnavailable) as exc:
            # Still `closing` in Redis: the next sweep after CLAIM_MS retries.
            logger.warning(
                "could not finish stream %s: %s", claimed.stream_id, type(exc).__name__
            )
            continue
        finished += 1
    return finished


async def _finish(finishing: Claimed) -> PushReceipt | None:
    """Store and send the message, then mark the stream done. A stored message
    whose finisher died before marking it is stored again by the sweep: the
    id's primary key refuses the copy (IntegrityError), and the first one is
    delivered by catch-up."""
    plan = await run_db(_plan, finishing)
    try:
        receipt = await live_messages.store_and_publish(plan)
    except IntegrityError:
        receipt = None
    await stream_state.forget(finishing.group, finishing.key, finishing.open_key)
    return receipt


def _plan(finishing: Claimed) -> Planned:
    owner = stream_owner(finishing.target)
    # SPEC §9: data.text is the parts joined, plus the final part's fields.
    data = {**(finishing.final_data or {}), "text": finishing.text}
    return live_messages.plan_streamed(
        message_id=uuid.UUID(finishing.message_id),
        sender=finishing.sender,
        event=finishing.event,
        data=data,
        to=owner,
        topic=None if owner is not None else finishing.target,
        stream_id=finishing.stream_id,
        incomplete=finishing.incomplete,
        persist=finishing.persist,
        exclude=finishing.exclude,
    )


def _target(part: StreamPart) -> str:
    if part.topic is not None:
        return part.topic
    assert part.to is not None
    return personal_stream(part.to)


def _script(part: StreamPart) -> PartScript:
    target = _target(part)
    return PartScript(
        scope=part.scope,
        stream_id=part.stream_id,
        group=stream_group(target),
        target=target,
        sender=part.sender,
        event=part.event,
        frame_around=frames.stream_part_template(
            stream_id=part.stream_id,
            sender=part.sender,
            to=part.to,
            topic=part.topic,
            delta=part.delta,
        ),
        delta=part.delta,
        final=part.final,
        final_data=part.data,
        event_stream=part.topic or "",
        exclude=part.exclude if part.topic is not None else "",
        persist=part.persist,
    )


def _finishing(part: StreamPart, taken: Taken) -> Claimed:
    target = _target(part)
    key = stream_state.part_key(part.scope, part.stream_id)
    return Claimed(
        key=key,
        text=taken.text or "",
        message_id=taken.message_id,
        target=target,
        sender=taken.sender,
        event=taken.event,
        exclude=taken.exclude,
        persist=taken.persist,
        group=stream_group(target),
        stream_id=part.stream_id,
        open_key=stream_state.open_key(part.scope),
        incomplete=False,
        final_data=part.data,
    )


def _limits() -> dict[str, Any]:
    return {
        "idle_seconds": settings.BRIDGE_STREAM_IDLE_TIMEOUT,
        "max_open": settings.BRIDGE_MAX_OPEN_STREAMS,
        "max_bytes": settings.BRIDGE_MAX_MESSAGE_BYTES,
    }
