"""Commands from concurrent callers, sent to Redis as one pipeline.

Fifty pushes in flight each want one small round trip (a PUBLISH, a ZCOUNT).
Sent one by one they queue for connections and cost a write, a read and the
asyncio bookkeeping each; here whatever is waiting when a pipeline leaves goes
in the next one, so under load many callers share each round trip, and a
lone caller still goes out at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Command = tuple[Any, ...]


class CoalescingPipeline:
    """`await execute(commands)` → their replies; one pipeline in flight at a time.

    `send` runs a list of commands as one pipeline and returns their replies
    in order. A failed pipeline fails every caller that was in it."""

    def __init__(self, send: Callable[[list[Command]], Awaitable[list[Any]]]) -> None:
        self._send = send
        self._waiting: list[tuple[Sequence[Command], asyncio.Future]] = []
        self._flush_task: asyncio.Task | None = None

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        replies = asyncio.get_running_loop().create_future()
        # Read the outcome even when the caller has stopped waiting for it.
        replies.add_done_callback(_consume_outcome)
        self._waiting.append((commands, replies))
        if self._flush_task is None:
            self._flush_task = asyncio.ensure_future(self._flush())
        # Shielded: a caller that gives up must not cancel the pipeline that
        # carries other callers' commands.
        return await asyncio.shield(replies)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    replies = await self._send(
                        [command for commands, _ in batch for command in commands]
                    )
                except BaseException as exc:
                    for _, future in batch:
                        _settle(future, exception=exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                start = 0
                for commands, future in batch:
                    _settle(future, result=replies[start : start + len(commands)])
                    start += len(commands)
        finally:
            self._flush_task = None
            for _, future in self._waiting:
                _settle(future, exception=ConnectionError("pipeline stopped"))
            self._waiting = []


async def run_pipeline(client, commands: list[Command]) -> list[Any]:
    """Send `commands` on `client` as one non-transactional pipeline."""
    pipeline = client.pipeline(transaction=False)
    for command in commands:
        pipeline.execute_command(*command)
    return await pipeline.execute()


def run_pipeline_blocking(client, commands: list[Command]) -> list[Any]:
    """run_pipeline for a blocking (thread-side) redis-py client."""
    pipeline = client.pipeline(transaction=False)
    for command in commands:
        pipeline.execute_command(*command)
    return pipeline.execute()


def _settle(future: asyncio.Future, *, result=None, exception=None) -> None:
    if future.done():
        return
    if isinstance(exception, asyncio.CancelledError):
        future.cancel()
    elif exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)


def _consume_outcome(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
