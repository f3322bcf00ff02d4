"""The process's one token-expiry timer (messaging/realtime/expiry.py, SPEC
§10): deadlines fire in order and on time, a reschedule replaces them, a
discarded connection gets nothing, and one timer handle serves them all."""

from __future__ import annotations

import asyncio
import time

import pytest

from messaging.realtime.expiry import EXPIRE, WARN, ExpiryClock

pytestmark = pytest.mark.timeout(10)


class Member:
    def __init__(self, name: str, log: list) -> None:
        self.name = name
        self.log = log

    def token_deadline(self, kind: str) -> None:
        self.log.append((self.name, kind, time.time()))


async def test_warn_comes_lead_seconds_before_and_expire_at_expiry():
    log: list = []
    clock = ExpiryClock(lead=0.3)
    expires = time.time() + 0.5
    clock.schedule(Member("a", log), expires)
    await asyncio.sleep(0.7)
    assert [(name, kind) for name, kind, _ in log] == [("a", WARN), ("a", EXPIRE)]
    assert log[0][2] == pytest.approx(expires - 0.3, abs=0.1)
    assert expires <= log[1][2] <= expires + 0.1
    assert len(clock) == 0  # forgotten once expired


async def test_less_than_lead_left_warns_at_once():
    log: list = []
    clock = ExpiryClock(lead=60)
    started = time.time()
    clock.schedule(Member("a", log), started + 0.3)
    await asyncio.sleep(0.05)
    assert [kind for _, kind, _ in log] == [WARN]
    await asyncio.sleep(0.4)
    assert [kind for _, kind, _ in log] == [WARN, EXPIRE]


async def test_a_reschedule_replaces_the_deadlines():
    log: list = []
    clock = ExpiryClock(lead=0.1)
    member = Member("a", log)
    clock.schedule(member, time.time() + 0.3)
    clock.schedule(member, time.time() + 0.8)  # a refresh
    await asyncio.sleep(0.5)
    assert log == []
    await asyncio.sleep(0.5)
    assert [kind for _, kind, _ in log] == [WARN, EXPIRE]


async def test_a_discarded_member_gets_nothing_and_others_are_unaffected():
    log: list = []
    clock = ExpiryClock(lead=0.05)
    gone, stays = Member("gone", log), Member("stays", log)
    clock.schedule(gone, time.time() + 0.2)
    clock.schedule(stays, time.time() + 0.25)
    clock.discard(gone)
    await asyncio.sleep(0.4)
    assert {name for name, _, _ in log} == {"stays"}


async def test_many_members_fire_in_deadline_order_from_one_timer_handle():
    log: list = []
    clock = ExpiryClock(lead=0.01)
    now = time.time()
    for n in reversed(range(20)):
        clock.schedule(Member(f"m{n:02}", log), now + 0.1 + n * 0.01)
    # One armed handle, whatever the number of connections.
    assert clock._handle is not None
    await asyncio.sleep(0.5)
    expired = [name for name, kind, _ in log if kind == EXPIRE]
    assert expired == [f"m{n:02}" for n in range(20)]


async def test_stale_entries_are_compacted():
    clock = ExpiryClock(lead=1)
    member = Member("a", [])
    for n in range(500):
        clock.schedule(member, time.time() + 100 + n)
    assert len(clock._heap) < 100


async def test_a_failing_member_does_not_stop_the_timer_for_the_others():
    log: list = []

    class Broken(Member):
        def token_deadline(self, kind: str) -> None:
            raise KeyError("inbox gone")

    clock = ExpiryClock(lead=0.01)
    now = time.time()
    clock.schedule(Broken("broken", log), now + 0.05)
    clock.schedule(Member("fine", log), now + 0.1)
    await asyncio.sleep(0.3)
    assert [(name, kind) for name, kind, _ in log] == [("fine", WARN), ("fine", EXPIRE)]
