"""Signals (SPEC §9): live-only frames such as typing indicators.

A signal is never stored and has no `seq`: it is published at once, to the
topic's group (every subscribed connection but the sender's) or to the
addressee's personal group (every connection of that user), under the rules
of a `message` frame: `client_publish` for a topic (streams/topics.py), and
for `to` the routing of streams/recipients.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts import selectors
from messaging import frames
from messaging.streams import topics
from messaging.streams.names import personal_stream, stream_group
from messaging.streams.publish import (
    Outgoing,
    deliver_event,
    publish,
    refuse_while_redis_is_down,
)
from messaging.streams.recipients import signal_recipient
from messaging.ws_database import run_db


@dataclass(frozen=True)
class ClientSignal:
    """A `signal` frame of a connected user (SPEC §9); exactly one of `to`
    and `topic`."""

    sender: str
    event: str
    data: dict[str, Any] | None
    to: str | None = None
    topic: str | None = None
    # The sending connection: it gets no copy of a topic signal.
    channel: str = ""
    # Whether the sending connection is subscribed to `topic`
    # (`client_publish: subscribers`).
    subscribed: bool = False


async def send_signal(signal: ClientSignal) -> str:
    """Decide who may receive the signal and publish it; returns the user id
    or topic it went to. Raises RoutingRefused, TopicRefused or
    LayerUnavailable; nothing is stored either way."""
    await refuse_while_redis_is_down()
    outgoing, target = await run_db(_route, signal)
    await publish([outgoing])
    return target


def may_address(sender: str, to: str) -> str:
    """Whom `sender` reaches with a signal or a streamed message sent `to`
    (the rules of a `message` frame's `to`, SPEC §9); raises RoutingRefused."""
    return signal_recipient(
        sender=sender,
        sender_is_public=selectors.is_public_account(sender),
        to=to,
        to_public_handle=selectors.canonical_handle(to),
    )


def _route(signal: ClientSignal) -> tuple[Outgoing, str]:
    """The one layer event carrying the signal, and where it goes."""
    if signal.topic is not None:
        topics.may_publish(
            user_id=signal.sender, topic=signal.topic, subscribed=signal.subscribed
        )
        frame = frames.signal_frame(
            event=signal.event,
            data=signal.data,
            sender=signal.sender,
            topic=signal.topic,
        )
        # seq None: subscribers send it at once, only for topics they hold.
        event = deliver_event(
            frames.encode(frame),
            stream=signal.topic,
            seq=None,
            exclude=signal.channel,
        )
        return Outgoing(stream_group(signal.topic), event), signal.topic
    assert signal.to is not None
    recipient = may_address(signal.sender, signal.to)
    frame = frames.signal_frame(
        event=signal.event, data=signal.data, sender=signal.sender, to=recipient
    )
    event = deliver_event(frames.encode(frame), stream=None, seq=None)
    return Outgoing(stream_group(personal_stream(recipient)), event), recipient
