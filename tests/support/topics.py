"""Helpers for tests of topics (SPEC §8): namespaces, fresh names, fake
subscriptions registered in the suite's real Redis, and namespaces and members
written into a running server's database (`manage.py shell`), as an operator's
admin would."""

from __future__ import annotations

import uuid
from typing import Any

import redis
from asgiref.sync import async_to_sync

from messaging import topic_presence
from messaging.models import TopicNamespace
from messaging.presence import PREFIX, ConnectionInfo
from messaging.streams.namespaces import forget_cached_rules
from tests.support.server_db import shell_json


def make_namespace(name: str, **settings: Any) -> TopicNamespace:
    """A namespace row, visible at once (the per-process rules cache dropped)."""
    row = TopicNamespace.objects.create(name=name, **settings)
    forget_cached_rules()
    return row


def fresh_topic(namespace: str = "room") -> str:
    """A topic no other test uses: Redis presence outlives each test."""
    return f"{namespace}:{uuid.uuid4().hex[:10]}"


def connection(user_id: str) -> ConnectionInfo:
    return ConnectionInfo(
        connection_id=uuid.uuid4().hex,
        user_id=user_id,
        instance="test",
        connected_at="2026-01-01T00:00:00Z",
        last_seen="2026-01-01T00:00:00Z",
        remote_addr="127.0.0.1",
        user_agent="pytest",
    )


def subscribe(topic: str, user_id: str) -> ConnectionInfo:
    """Register one live subscription of `user_id` to `topic`, as a consumer would."""
    info = connection(user_id)
    async_to_sync(topic_presence.subscribe)(topic, info)
    return info


def clear_topic_presence(redis_url: str) -> None:
    """Delete every topic presence key, so cluster-wide reads count only the
    current test's subscriptions."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"{PREFIX}subs:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


_CREATE = """
import json
from messaging.models import TopicMember, TopicNamespace
for name, settings in NAMESPACES.items():
    TopicNamespace.objects.create(name=name, **settings)
for topic, user_id in MEMBERS:
    TopicMember.objects.get_or_create(topic=topic, user_id=user_id)
print(json.dumps(sorted(NAMESPACES)))
"""


def fresh_namespace(prefix: str = "ns") -> str:
    """A namespace no other test uses (no process has its rules cached)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def create_topics(
    env: dict[str, str],
    namespaces: dict[str, dict[str, Any]],
    members: list[tuple[str, str]] = (),
) -> None:
    """Create namespaces (name -> TopicNamespace fields) and (topic, user) members."""
    code = f"NAMESPACES = {namespaces!r}\nMEMBERS = {list(members)!r}\n" + _CREATE
    shell_json(env, code)
