"""messaging.streams.store.GroupCommit: concurrent pushes share a transaction, and a
write that fails it does not fail the others (SPEC §5 store-then-send)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, connection

from messaging.models import Message, StreamEntry
from messaging.streams.delivery import PushRequest
from messaging.streams.names import personal_stream
from messaging.streams.recipients import DIRECT, Recipient
from messaging.streams.store import GroupCommit, Planned

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10


def planned(user_id: str) -> Planned:
    request = PushRequest(
        targets=(user_id,), event="message", data={"n": 1}, sender=None
    )
    return Planned(request, uuid.uuid4(), [Recipient(user_id, DIRECT, ())])


def in_thread(function):
    """Run `function` on a new thread with its own database connection."""

    def run():
        try:
            return function()
        finally:
            connection.close()

    return run


class HeldCommitter:
    """A first write that holds the committer until released, so that the
    writes submitted meanwhile queue behind it."""

    def __init__(self, commit: GroupCommit, pool: ThreadPoolExecutor) -> None:
        self._commit = commit
        self._holding = threading.Event()
        self._release = threading.Event()
        self.first = pool.submit(
            in_thread(lambda: commit.store([planned("gc-lead")], self._hold))
        )
        assert self._holding.wait(WAIT)

    def _hold(self) -> None:
        self._holding.set()
        assert self._release.wait(WAIT)

    def release_once_queued(self, count: int):
        while len(self._commit._queued) < count:
            threading.Event().wait(0.01)
        self._release.set()
        return self.first.result(WAIT)


def test_writes_queued_behind_a_commit_are_committed_together():
    commit = GroupCommit()
    queued = [planned("gc-queued") for _ in range(5)]
    with ThreadPoolExecutor(6) as pool:
        held = HeldCommitter(commit, pool)
        followers = [
            pool.submit(in_thread(lambda p=p: commit.store([p]))) for p in queued
        ]
        leader_time = held.release_once_queued(len(queued))
        follower_times = {f.result(WAIT) for f in followers}

    # The five waited for the first commit and then went in as one group.
    assert len(follower_times) == 1
    assert follower_times != {leader_time}
    assert sorted(p.seqs["user:gc-queued"] for p in queued) == [1, 2, 3, 4, 5]
    assert StreamEntry.objects.filter(stream=personal_stream("gc-queued")).count() == 5
    assert Message.objects.count() == 6


def test_a_write_that_fails_the_group_fails_alone():
    commit = GroupCommit()

    def twin_key():
        raise IntegrityError("a concurrent push recorded this key first")

    healthy = [planned("gc-healthy") for _ in range(3)]
    doomed = planned("gc-doomed")
    with ThreadPoolExecutor(5) as pool:
        held = HeldCommitter(commit, pool)
        bad = pool.submit(in_thread(lambda: commit.store([doomed], twin_key)))
        good = [pool.submit(in_thread(lambda p=p: commit.store([p]))) for p in healthy]
        held.release_once_queued(4)
        for future in good:
            future.result(WAIT)
        with pytest.raises(IntegrityError):
            bad.result(WAIT)

    assert sorted(
        StreamEntry.objects.filter(stream=personal_stream("gc-healthy")).values_list(
            "seq", flat=True
        )
    ) == [1, 2, 3]
    assert not StreamEntry.objects.filter(stream=personal_stream("gc-doomed")).exists()


def test_concurrent_pushes_to_one_user_get_every_seq_once():
    commit = GroupCommit()
    writes = [planned("gc-busy") for _ in range(60)]
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(in_thread_store(commit), writes, timeout=WAIT * 3))
    assert sorted(p.seqs["user:gc-busy"] for p in writes) == list(range(1, 61))
    assert sorted(
        StreamEntry.objects.filter(stream=personal_stream("gc-busy")).values_list(
            "seq", flat=True
        )
    ) == list(range(1, 61))


def in_thread_store(commit: GroupCommit):
    def store(plan: Planned):
        return in_thread(lambda: commit.store([plan]))()

    return store
