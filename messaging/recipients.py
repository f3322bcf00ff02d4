"""The one place that decides who receives a message (SPEC §1, §2, §6).

Both the HTTP push path and the WebSocket client path call `decide_recipients`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DIRECT = "direct"
MENTION = "mention"


@dataclass(frozen=True)
class Recipient:
    user_id: str
    via: str
    # The handles whose mention routed this copy here; empty on a direct copy.
    mentions: tuple[str, ...] = ()


def decide_recipients(
    *,
    targets: Iterable[str],
    mentioned: Iterable[str] = (),
    exclude: str | None = None,
) -> list[Recipient]:
    """Targets first, in request order, then mentioned accounts not already targeted.

    A user both targeted and mentioned gets one (direct) copy. `exclude` (the
    sender of a client message) never receives its own message.
    """
    chosen: dict[str, Recipient] = {}
    for user_id in targets:
        if user_id != exclude and user_id not in chosen:
            chosen[user_id] = Recipient(user_id=user_id, via=DIRECT)
    for handle in mentioned:
        if handle != exclude and handle not in chosen:
            chosen[handle] = Recipient(user_id=handle, via=MENTION, mentions=(handle,))
    return list(chosen.values())
