"""Waiting for something that becomes true within a deadline (presence, metrics)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T] | T], *, within: float, every: float = 0.1
) -> T:
    """Call `check` until it stops raising AssertionError; returns its result.

    Past `within` seconds the last AssertionError is raised, saying how long was
    waited, so a slow or missing effect fails with what was last seen."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            return result
        except AssertionError as error:
            if time.monotonic() >= deadline:
                raise AssertionError(f"not within {within} s: {error}") from error
        await asyncio.sleep(every)
