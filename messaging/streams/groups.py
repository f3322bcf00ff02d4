"""Channel-layer group names and event types, declared once.

User ids are validated against SPEC §1 before they get here, so they are always
valid group-name parts (channels' `group_name_regex`, at most 100 characters).
"""

from __future__ import annotations

DELIVER_EVENT = "bridge.deliver"
DISCONNECT_EVENT = "bridge.disconnect"
BROADCAST_GROUP = "bridge.broadcast"
HEALTH_GROUP = "bridge.health"


def user_group(user_id: str) -> str:
    return f"user.{user_id}"
