"""bridge_project/rate_limits.py on the suite's real Redis: one fixed window per
key, counted atomically by every thread and process, and counted in this
process's memory while Redis is away."""

from __future__ import annotations

import threading

import pytest
import redis

from bridge_project.rate_limits import (
    ConnectionWindow,
    Limit,
    LocalWindows,
    hit,
    hit_blocking,
)
from tests.support.ids import fresh_user_id

pytestmark = pytest.mark.timeout(30)


def test_hits_up_to_the_limit_are_allowed_and_the_next_is_refused():
    limit = Limit("test", 3, 60)
    ident = fresh_user_id()
    decisions = [hit_blocking(limit, ident) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 0 < decisions[-1].retry_after <= 60
    assert 1 <= decisions[-1].retry_after_ms <= 60_000


def test_the_window_expires_with_its_first_hit(redis_server):
    limit = Limit("test", 3, 60)
    ident = fresh_user_id()
    for _ in range(5):
        hit_blocking(limit, ident)
    client = redis.Redis.from_url(redis_server.url)
    try:
        # Set by the first hit and not pushed back by later (refused) ones.
        assert 0 < client.pttl(limit.key(ident)) <= 60_000
        assert int(client.get(limit.key(ident))) == 5
    finally:
        client.close()


def test_each_ident_and_each_limit_has_its_own_window():
    alice, bob = fresh_user_id("alice"), fresh_user_id("bob")
    messages, handshakes = Limit("test-m", 1, 60), Limit("test-h", 1, 60)
    assert hit_blocking(messages, alice).allowed
    assert not hit_blocking(messages, alice).allowed
    assert hit_blocking(messages, bob).allowed
    assert hit_blocking(handshakes, alice).allowed


def test_concurrent_hits_from_many_threads_admit_exactly_the_limit():
    limit = Limit("test", 50, 60)
    ident = fresh_user_id()
    allowed: list[bool] = []
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        results = [hit_blocking(limit, ident).allowed for _ in range(25)]
        allowed.extend(results)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 200
    assert allowed.count(True) == 50


async def test_the_event_loop_and_request_threads_share_one_count():
    limit = Limit("test", 2, 60)
    ident = fresh_user_id()
    assert (await hit(limit, ident)).allowed
    assert hit_blocking(limit, ident).allowed
    assert not (await hit(limit, ident)).allowed


def test_a_redis_that_forgot_the_script_still_counts(redis_server):
    limit = Limit("test", 1, 60)
    ident = fresh_user_id()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.script_flush()  # what a restarted Redis looks like
    finally:
        client.close()
    assert hit_blocking(limit, ident).allowed
    assert not hit_blocking(limit, ident).allowed


def test_while_redis_is_down_this_process_still_counts(redis_restartable):
    limit = Limit("test", 2, 60)
    ident = fresh_user_id()
    redis_restartable.stop(kill=True)
    decisions = [hit_blocking(limit, ident).allowed for _ in range(3)]
    assert decisions == [True, True, False]


async def test_while_redis_is_down_the_event_loop_still_counts(redis_restartable):
    limit = Limit("test", 2, 60)
    ident = fresh_user_id()
    redis_restartable.stop(kill=True)
    decisions = [(await hit(limit, ident)).allowed for _ in range(3)]
    assert decisions == [True, True, False]


def test_rates_are_read_like_drf_rates():
    assert Limit.from_rate("x", "100/minute") == Limit("x", 100, 60)
    assert Limit.from_rate("x", "5/s") == Limit("x", 5, 1)
    assert Limit.from_rate("x", "7/hour") == Limit("x", 7, 3600)
    assert Limit.from_rate("x", "1/day") == Limit("x", 1, 86400)


# --- the in-memory windows -----------------------------------------------------


def test_a_local_window_starts_again_when_its_period_is_over():
    windows = LocalWindows()
    limit = Limit("test", 1, 60)
    assert windows.hit(limit, "a", now=100.0).allowed
    refused = windows.hit(limit, "a", now=130.0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(30.0)
    assert windows.hit(limit, "a", now=160.0).allowed


def test_local_windows_keep_at_most_max_keys():
    windows = LocalWindows(max_keys=10)
    limit = Limit("test", 1, 60)
    for n in range(1000):
        windows.hit(limit, f"198.51.100.{n}", now=100.0)
    assert len(windows) <= 10
    # Expired windows go first, before any live one is dropped.
    windows.hit(limit, "newcomer", now=1000.0)
    assert len(windows) == 1


def test_a_connection_window_counts_its_own_frames():
    window = ConnectionWindow()
    assert [window.hit(2, 60, now=10.0).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    assert window.hit(2, 60, now=69.0).retry_after == pytest.approx(1.0)
    assert window.hit(2, 60, now=70.0).allowed
