"""Reconnect delays: exponential backoff with full jitter (SPEC §11).

The delay before attempt n (counting from 0) is drawn uniformly from
[minimum, min(maximum, minimum * 2 ** (n + 1))], so a crowd of clients that lost
the same server spreads out instead of coming back in one wave. A connection that
stayed up for `stable_after` seconds resets the count: the next drop starts
again from the smallest delays.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    def __init__(
        self,
        *,
        minimum: float = 0.5,
        maximum: float = 20.0,
        stable_after: float = 10.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < minimum <= maximum:
            raise ValueError(f"need 0 < minimum <= maximum, got {minimum}, {maximum}")
        self.minimum = minimum
        self.maximum = maximum
        self.stable_after = stable_after
        self.attempts = 0
        self._rng = rng or random.Random()
        self._clock = clock
        self._up_since: float | None = None

    def ceiling(self) -> float:
        """The largest delay the next attempt may draw."""
        # min() before the power would overflow for a very long outage.
        exponent = min(self.attempts + 1, 64)
        return min(self.maximum, self.minimum * 2.0**exponent)

    def next_delay(self) -> float:
        """The delay before the next attempt; counts the attempt."""
        delay = self._rng.uniform(self.minimum, self.ceiling())
        self.attempts += 1
        return delay

    def connected(self) -> None:
        """Call when a connection is established."""
        self._up_since = self._clock()

    def disconnected(self) -> None:
        """Call when a connection ends: a stable one resets the attempts."""
        if self._up_since is not None and (
            self._clock() - self._up_since >= self.stable_after
        ):
            self.reset()
        self._up_since = None

    def reset(self) -> None:
        self.attempts = 0
