"""Topic set-up for end-to-end tests: namespaces and members written into a
running server's database with `manage.py shell`, as an operator's admin would."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.server_db import shell_json

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
