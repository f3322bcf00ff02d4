"""Who is connected to this process.

Until the cluster-wide registry exists this is the instance's own view, which
is what push replies report as `online`/`connections` (see docs/protocol.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

_open_connections: Counter[str] = Counter()


def connection_opened(user_id: str) -> None:
    _open_connections[user_id] += 1


def connection_closed(user_id: str) -> None:
    _open_connections[user_id] -= 1
    if _open_connections[user_id] <= 0:
        del _open_connections[user_id]


def connection_counts(user_ids: Iterable[str]) -> dict[str, int]:
    return {user_id: _open_connections.get(user_id, 0) for user_id in user_ids}


def online_user_count() -> int:
    return len(_open_connections)
