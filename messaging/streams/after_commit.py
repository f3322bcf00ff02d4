"""Publishing a stored message after its transaction committed (SPEC §5).

A stored message survives a failed publish: the recipients' connections fetch
it by catch-up (their next heartbeat, or the next message's gap), so only a
message with nothing stored (live-only) is refused when Redis fails. The
recipients' connections are counted while publishing, for the push reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from messaging.streams.publish import (
    LayerUnavailable,
    Outgoing,
    publish,
)
from messaging.streams.receipts import (
    NOBODY,
    Audience,
    count_audience,
)
from messaging.streams.store import Planned

logger = logging.getLogger(__name__)


async def publish_and_count(
    outgoing: Sequence[Outgoing], planned: Sequence[Planned], *, count: bool = True
) -> Audience:
    """Publish, and meanwhile count the recipients' connections (one round trip).

    Counting is informational: if only it fails, the push still succeeded."""
    if not count:
        await publish(outgoing)
        return NOBODY
    counting = asyncio.ensure_future(count_audience(planned))
    try:
        await publish(outgoing)
    except LayerUnavailable:
        counting.cancel()
        raise
    return await counting


async def publish_after_commit(
    outgoing: Sequence[Outgoing], planned: Sequence[Planned], *, count: bool = True
) -> Audience:
    """Publish after commit. Stored messages survive a failed publish (they are
    delivered by catch-up), so only a push with nothing stored is refused."""
    try:
        return await publish_and_count(outgoing, planned, count=count)
    except LayerUnavailable:
        if not left_for_catch_up(planned):
            raise
        return NOBODY


def left_for_catch_up(planned: Sequence[Planned]) -> bool:
    """After a failed publish: whether stored messages remain for catch-up."""
    stored = sum(1 for plan in planned if plan.seqs)
    if stored:
        logger.warning(
            "publish failed after commit; %d stored message(s) go out on catch-up",
            stored,
        )
    return stored > 0
