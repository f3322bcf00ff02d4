"""Channel-layer group names and event types, declared once.

User ids are validated against SPEC §1 before they get here, so they are always
valid group-name parts (channels' `group_name_regex`, at most 100 characters).
A stream's group is `names.stream_group`.
"""

from __future__ import annotations

DELIVER_EVENT = "bridge.deliver"
DISCONNECT_EVENT = "bridge.disconnect"
# A user's connections check a topic subscription again (membership removed).
RECHECK_EVENT = "bridge.recheck_subscription"
# A topic's kept messages were deleted: its subscriptions end (SPEC §9 reset).
TOPIC_RESET_EVENT = "bridge.topic_reset"
BROADCAST_GROUP = "bridge.broadcast"
HEALTH_GROUP = "bridge.health"


def user_group(user_id: str) -> str:
    return f"user.{user_id}"
