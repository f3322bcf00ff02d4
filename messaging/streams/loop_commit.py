"""The database side of pushes handled on the event loop: one thread hand-off
per group of concurrent pushes, not one per push.

The push views run on the event loop (messaging/api/async_views.py) and the
database is synchronous, so their reads and writes have to run on a thread.
A hand-off per push costs more CPU than the push's own writes (two thread
switches and a GIL hand-over each way; docs/performance.md), so pushes that
arrive while a hand-off is in flight queue here, and the next hand-off runs
all of their work at once: each push's `prepare` (its reads: namespaces,
mentions, idempotency records), then every write in one committed transaction
(streams/store.py's group commit, with its retry of each write alone when one
fails the shared transaction).

A push that queues while nothing is in flight starts a hand-off for everything
queued; when it finishes, the next one starts for whatever queued meanwhile.
A hand-off runs with `thread_sensitive=True` in the context of its group's
first push: under daphne that is asgiref's one shared thread (hand-offs
never overlap, so one thread is all they need), and under a sync caller
(`delivery.push_batch` from a test or a management command) it is the caller's
own thread, with its own database connection and transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection, reset_queries
from django.utils import timezone

from messaging.streams.store import _commit_group, _Write

# What a push's `prepare` returns: anything for the caller, and what to write
# (None: nothing).
Prepared = tuple[Any, "_Write | None"]


@dataclass(eq=False)
class _Job:
    prepare: Callable[[], Prepared]
    # The context the push runs in: its hand-off runs in it, so that a sync
    # caller's work comes back to that caller's thread.
    context: contextvars.Context
    done: asyncio.Future
    value: Any = None
    write: _Write | None = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Queue:
    jobs: list[_Job] = field(default_factory=list)
    busy: bool = False


class LoopCommit:
    """Runs the database work of pushes on a thread, one hand-off per group."""

    def __init__(self) -> None:
        # One queue per event loop: a sync caller's push runs on a loop of its
        # own (async_to_sync), which must not wait on daphne's.
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, prepare: Callable[[], Prepared]) -> tuple[Any, datetime]:
        """Run `prepare()` on the database thread, then commit the write it
        returns; returns (its value, the time stored). Raises what `prepare`
        or the commit raised. Returns only once the write is committed."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        job = _Job(prepare, contextvars.copy_context(), loop.create_future())
        queue.jobs.append(job)
        if not queue.busy:
            queue.busy = True
            self._hand_off(loop, queue)
        # shield: a cancelled request leaves its work to finish (it may be
        # committed already), and the queue keeps going without it.
        await asyncio.shield(job.done)
        if job.error is not None:
            raise job.error
        created_at = job.write.created_at if job.write is not None else None
        return job.value, created_at or timezone.now()

    def _hand_off(self, loop: asyncio.AbstractEventLoop, queue: _Queue) -> None:
        group, queue.jobs = queue.jobs, []
        hand_off = loop.create_task(
            sync_to_async(_run_group, thread_sensitive=True)(group),
            context=group[0].context,
        )

        def finished(task: asyncio.Task) -> None:
            failure = None if task.cancelled() else task.exception()
            for job in group:
                if failure is not None and job.error is None:
                    job.error = failure
                if not job.done.done():
                    job.done.set_result(None)
            if queue.jobs:
                self._hand_off(loop, queue)  # pushes that queued meanwhile
            else:
                queue.busy = False

        hand_off.add_done_callback(finished)


# Set by a sync caller (delivery.push_batch) around its push: the hand-off
# then runs on that caller's thread, whose connection is the caller's to manage.
on_callers_thread: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "on_callers_thread", default=False
)


def _run_group(group: list[_Job]) -> None:
    """On the database thread: every job's reads, then all writes together."""
    if on_callers_thread.get() or connection.in_atomic_block:
        # A sync caller's thread, or its open transaction (a test's under
        # Django's test client): the caller's connection, left as it is.
        _run_jobs(group)
        return
    # What request_started and request_finished do for a request's thread,
    # which this thread is not: a connection that broke or aged
    # (CONN_MAX_AGE) is replaced, and DEBUG's query log does not keep every
    # push's SQL (and data) for ever. (Only under DEBUG: a test counting
    # queries turns the log on and must keep what it counts.)
    if settings.DEBUG:
        reset_queries()
    close_old_connections()
    try:
        _run_jobs(group)
    finally:
        close_old_connections()


def _run_jobs(group: list[_Job]) -> None:
    writes = []
    for job in group:
        try:
            job.value, job.write = job.prepare()
        except Exception as exc:
            job.error = exc
            continue
        if job.write is not None and (job.write.durable or job.write.after_save):
            writes.append(job.write)
    if not writes:
        return
    if connection.in_atomic_block:
        # The caller's own transaction (a test's) would hold everyone's commit.
        for write in writes:
            _commit_group([write])
    else:
        _commit_group(writes)
    for job in group:
        if job.write is not None and job.write.error is not None:
            job.error = job.write.error


loop_commit = LoopCommit()
