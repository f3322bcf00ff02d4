"""A process leaving the cluster (SPEC §11): its WebSocket clients are sent to
other instances and its presence is removed at once, not when it expires.

The server drives it (bridge_project/daphne_shutdown.py), on its event loop,
after it has stopped accepting:

    departure = Departure(grace=...)     # heartbeat stopped
    while ...:                           # until quiet or out of time
        departure.send_away()            # 1001 `going_away` to each connection
        ...
    await departure.forget(timeout=...)  # stragglers' entries, the instance record

Each connection closes itself (BridgeConsumer.go_away) after what it is doing,
and its usual disconnect leaves its groups and unregisters it; `forget` only
removes what connections still open at the deadline would have left behind.
"""

from __future__ import annotations

import asyncio
import logging
import random

from redis.exceptions import RedisError

from messaging import presence
from messaging.instance import INSTANCE_NAME
from messaging.realtime import instance_registry
from messaging.realtime.heartbeat import Beating, heartbeat_for_loop

logger = logging.getLogger(__name__)

# Clients reconnect after a random delay up to this (or the grace, if shorter),
# so that a process's thousands of clients do not land on the remaining
# instances in the same instant.
RECONNECT_SPREAD_SECONDS = 5.0


def retry_after_ms(grace: float, rng: random.Random | None = None) -> int:
    """A reconnect hint, uniform over [0, min(RECONNECT_SPREAD_SECONDS, grace)]."""
    spread = min(RECONNECT_SPREAD_SECONDS, grace)
    return round((rng or random).uniform(0.0, spread) * 1000)


class Departure:
    """This event loop's connections leaving; made when shutdown begins."""

    def __init__(self, *, grace: float) -> None:
        self.grace = grace
        self._heartbeat = heartbeat_for_loop()
        # A beat now would re-register what is being removed.
        self._heartbeat.stop()
        self._registration = instance_registry.stop_registering()
        self._told: set[Beating] = set()

    def send_away(self) -> int:
        """Tell every connection not told yet (handshakes finishing during the
        drain join later) to close with 1001; returns how many were told."""
        new = self._heartbeat.members - self._told
        for member in new:
            member.go_away(retry_after_ms(self.grace))
        self._told |= new
        return len(new)

    @property
    def connections_left(self) -> int:
        """Connections that have not begun their disconnect yet."""
        return len(self._heartbeat.members)

    async def forget(self, *, timeout: float) -> None:
        """Remove the registry entries of connections still open and this
        instance's record, within `timeout`."""
        left = [member.connection for member in self._heartbeat.members]
        try:
            async with asyncio.timeout(timeout):
                if self._registration is not None:
                    # A write in flight must land before the removal, not after.
                    await asyncio.wait([self._registration])
                await asyncio.gather(*(presence.unregister(info) for info in left))
                await presence.unregister_instance(INSTANCE_NAME)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning(
                "could not remove this instance from presence: %s; its entries "
                "expire within two heartbeat intervals",
                type(exc).__name__,
            )
