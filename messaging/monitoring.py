"""The operators' live view (the admin's Live connections page, issue 17):
what changed in the cluster since the last look.

A `MonitorFeed` belongs to one staff socket (messaging/realtime/monitor.py).
Each `look()` reads the cluster-wide figures the operations API reads
(api/operations.py: `/api/stats`, `/api/users/online`) and returns a
`monitor` frame: the figures, the first page of online users, which of those
users connected or disconnected since the previous look, and the push rate;
or None when nothing changed and a keep-alive is not due yet.
"""

from __future__ import annotations

import time
from typing import Any

from messaging import frames
from messaging.api import operations

# Users listed per frame, as the page's first page (`/api/users/online`).
USERS_SHOWN = 100
# A frame at least this often, so the page can tell a quiet cluster from a
# dead socket.
KEEP_ALIVE_SECONDS = 5.0


class MonitorFeed:
    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._counts: dict[str, int] | None = None
        self._pushed: tuple[float, int] | None = None
        self._last: dict[str, Any] | None = None
        self._sent_at = 0.0

    async def look(self) -> dict[str, Any] | None:
        """The next `monitor` frame, or None; raises LayerUnavailable."""
        stats = await operations.with_deadline(operations.cluster_stats)
        online = await operations.with_deadline(
            operations.online_users_page, offset=0, limit=USERS_SHOWN
        )
        now = self._clock()
        counts = {u["user_id"]: u["connections"] for u in online["users"]}
        changes = _changes(self._counts, counts)
        self._counts = counts
        rate = self._push_rate(now, stats["messages_pushed"])
        state = {"stats": stats, "users": online["users"], "count": online["count"]}
        if (
            not changes
            and state == self._last
            and not rate
            and now - self._sent_at < KEEP_ALIVE_SECONDS
        ):
            return None
        self._last, self._sent_at = state, now
        return frames.monitor_frame(
            stats=stats,
            users=online["users"],
            online_users=online["count"],
            changes=changes,
            pushes_per_second=rate,
        )

    def _push_rate(self, now: float, pushed: int) -> float:
        """Pushes per second since the previous look, cluster-wide."""
        previous, self._pushed = self._pushed, (now, pushed)
        if previous is None or now <= previous[0]:
            return 0.0
        return round(max(0, pushed - previous[1]) / (now - previous[0]), 1)


def _changes(
    before: dict[str, int] | None, after: dict[str, int]
) -> list[dict[str, Any]]:
    """Each listed user whose connection count moved: `connected` (+n) or
    `disconnected` (-n), with the count now. Nothing on the first look."""
    if before is None:
        return []
    changes = []
    for user_id in sorted(before.keys() | after.keys()):
        old, new = before.get(user_id, 0), after.get(user_id, 0)
        if new != old:
            kind = "connected" if new > old else "disconnected"
            changes.append({"event": kind, "user_id": user_id, "connections": new})
    return changes
