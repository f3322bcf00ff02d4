"""What the operations API reads and does, cluster-wide (SPEC §6)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from messaging import presence, topic_presence
from messaging.realtime import instance_registry
from messaging.streams import publish


async def with_deadline(function: Callable[..., Awaitable[Any]], *args, **kwargs):
    """Run a Redis-backed read or action; LayerUnavailable past the deadline."""
    try:
        async with asyncio.timeout(settings.BRIDGE_LAYER_TIMEOUT):
            return await function(*args, **kwargs)
    except (RedisError, OSError, TimeoutError) as exc:
        raise publish.LayerUnavailable(type(exc).__name__) from exc


async def cluster_stats() -> dict[str, Any]:
    await instance_registry.register_this_instance()
    instances = await presence.instances()
    totals = {"messages_pushed": 0, "messages_delivered": 0, "errors": 0}
    for instance in instances:
        for name in totals:
            totals[name] += int(instance.get(name) or 0)
    topics, subscriptions = await topic_presence.totals()
    return {
        "total_connections": sum(int(i.get("connections") or 0) for i in instances),
        "online_users": await presence.online_user_count(),
        **totals,
        # SPEC §8: topics with live subscriptions, and those subscriptions.
        "topics": topics,
        "subscriptions": subscriptions,
        "instances": [
            {
                "instance": i["instance"],
                "connections": int(i.get("connections") or 0),
                "started_at": i.get("started_at"),
            }
            for i in instances
        ],
    }


async def online_users_page(*, offset: int, limit: int) -> dict[str, Any]:
    users = await presence.online_users(offset=offset, limit=limit)
    return {
        "users": [{"user_id": u, "connections": n} for u, n in users],
        "count": await presence.online_user_count(),
    }


async def user_connections(user_id: str) -> list[dict[str, Any]]:
    found = await presence.user_connections(user_id)
    for connection in found:
        acked = connection.get("acked_seq")
        connection["acked_seq"] = int(acked) if acked else None
    return sorted(found, key=lambda c: c.get("connected_at", ""))


async def disconnect_user(user_id: str) -> int:
    """Close every connection of the user, on every instance, with 4000."""
    counts = await presence.connection_counts([user_id])
    await publish.disconnect_user(user_id)
    return counts.get(user_id, 0)
