"""The reconnect backoff (SPEC §11): bounds, full jitter, reset after a stable
connection; with an injected random source and clock."""

from __future__ import annotations

import random

import pytest

from bridge_client import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Extremes(random.Random):
    """uniform() returns the low end, then the high end, alternately."""

    def __init__(self) -> None:
        super().__init__(0)
        self.calls = 0

    def uniform(self, a: float, b: float) -> float:
        self.calls += 1
        return a if self.calls % 2 else b


def test_delays_double_from_half_a_second_and_stop_at_twenty():
    backoff = Backoff(rng=random.Random(1))
    ceilings = []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        backoff.next_delay()
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0, 20.0, 20.0]


def test_every_delay_is_within_the_bounds():
    backoff = Backoff(rng=random.Random(7))
    for attempt in range(200):
        ceiling = backoff.ceiling()
        delay = backoff.next_delay()
        assert 0.5 <= delay <= ceiling <= 20.0, attempt
    assert backoff.attempts == 200


def test_the_jitter_covers_the_whole_range():
    backoff = Backoff(rng=Extremes())
    # Full jitter: from the minimum up to the attempt's ceiling.
    assert [backoff.next_delay() for _ in range(4)] == [0.5, 2.0, 0.5, 8.0]
    # A real random source spreads a crowd of clients over the range.
    delays = []
    for seed in range(500):
        crowd = Backoff(rng=random.Random(seed))
        for _ in range(4):
            crowd.next_delay()
        delays.append(crowd.next_delay())  # the 5th attempt: [0.5, 16]
    assert min(delays) < 2.0 and max(delays) > 14.0
    assert len({round(d, 3) for d in delays}) > 400


def test_a_stable_connection_resets_the_attempts():
    clock = Clock()
    backoff = Backoff(rng=random.Random(3), clock=clock, stable_after=10)
    for _ in range(5):
        backoff.next_delay()
    backoff.connected()
    clock.now += 9.9
    backoff.disconnected()
    assert backoff.attempts == 5  # too short to count as stable
    assert backoff.ceiling() == 20.0
    backoff.connected()
    clock.now += 10
    backoff.disconnected()
    assert backoff.attempts == 0
    assert backoff.ceiling() == 1.0


def test_a_failed_attempt_without_a_connection_does_not_reset():
    clock = Clock()
    backoff = Backoff(rng=random.Random(3), clock=clock)
    backoff.next_delay()
    clock.now += 100
    backoff.disconnected()
    assert backoff.attempts == 1


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        Backoff(minimum=0)
    with pytest.raises(ValueError):
        Backoff(minimum=5, maximum=1)
