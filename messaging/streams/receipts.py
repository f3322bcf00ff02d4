"""What a push answers (SPEC §6, §8): each recipient's seq and connections, a
topic's seq and subscribers, counted cluster-wide from presence after (or
while) the events go out. Counting is informational: when Redis cannot answer
it, the push has still succeeded and reports nobody connected."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from messaging import presence, topic_presence
from messaging.streams.names import personal_stream
from messaging.streams.recipients import DIRECT
from messaging.streams.store import Planned

logger = logging.getLogger(__name__)


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
    topic: str | None = None
    topic_seq: int | None = None
    subscribers: int = 0
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
        recipients = self._recipients_reply()
        if self.topic is not None:
            return {
                "id": self.message_id,
                "topic": self.topic,
                "seq": self.topic_seq,
                "subscribers": self.subscribers,
                "recipients": recipients,
            }
        return {"id": self.message_id, "recipients": recipients}

    def _recipients_reply(self) -> list[dict[str, Any]]:
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
        return recipients


@dataclass(frozen=True)
class Audience:
    """Who was connected when the events went out: presence, cluster-wide."""

    connections: dict[str, int]
    online_users: int = 0
    # Live subscriptions per topic pushed to.
    subscribers: dict[str, int] = field(default_factory=dict)


NOBODY = Audience(connections={})


def _counted(planned: Sequence[Planned]) -> tuple[list[str], list[str], bool]:
    """Whose connections a reply reports, the topics whose subscribers it
    reports, and whether it needs the online count."""
    users = [r.user_id for plan in planned for r in plan.recipients]
    topics = [plan.request.topic for plan in planned if plan.request.topic]
    return users, topics, any(plan.request.broadcast for plan in planned)


async def count_audience(planned: Sequence[Planned]) -> Audience:
    users, topics, wants_online = _counted(planned)
    try:
        async with asyncio.timeout(settings.BRIDGE_LAYER_TIMEOUT):
            counts = await presence.connection_counts(users)
            online = await presence.online_user_count() if wants_online else 0
            subscribers = (
                await topic_presence.subscriber_counts(topics) if topics else {}
            )
    except (RedisError, OSError, TimeoutError) as exc:
        logger.warning("presence unavailable for a push reply: %s", type(exc).__name__)
        return NOBODY
    return Audience(counts, online, subscribers)


def replayed(reply: dict[str, Any]) -> PushReceipt:
    return PushReceipt(message_id=reply["id"], replayed=reply)


def receipt_for(plan: Planned, audience: Audience) -> PushReceipt:
    if plan.request.broadcast:
        return PushReceipt(
            message_id=str(plan.message_id),
            broadcast=True,
            online_users=audience.online_users,
        )
    counts = audience.connections
    topic = plan.request.topic
    return PushReceipt(
        message_id=str(plan.message_id),
        topic=topic,
        topic_seq=plan.seqs.get(topic) if topic else None,
        subscribers=audience.subscribers.get(topic, 0) if topic else 0,
        recipients=tuple(
            RecipientReceipt(
                user_id=r.user_id,
                seq=plan.seqs.get(personal_stream(r.user_id)),
                via=r.via,
                online=counts.get(r.user_id, 0) > 0,
                connections=counts.get(r.user_id, 0),
            )
            for r in plan.recipients
        ),
    )
