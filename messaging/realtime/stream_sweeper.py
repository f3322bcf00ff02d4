"""One timer per process finishes idle streamed messages (SPEC §9).

A stream that gets no part for BRIDGE_STREAM_IDLE_TIMEOUT is stored by the
server with `"incomplete": true` (streams/streaming.py). Any process may do
it (the sender's may be gone), so every process sweeps: one Redis script per
shard per sweep claims what is due, atomically, so two processes never finish
the same stream. Started on the process's first ASGI event, like its
/api/stats entry (realtime/instance_registry.py): a process that only serves
HTTP parts sweeps too. It sweeps until the process exits: a stream it
claimed and could not store is taken over by another process after
stream_state.CLAIM_MS.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from django.conf import settings
from django.db import DatabaseError

from messaging.streams import streaming
from messaging.streams.publish import LayerUnavailable

logger = logging.getLogger(__name__)

# The longest wait between sweeps: an idle stream is finished at most this
# long after its deadline.
MAX_SWEEP_SECONDS = 1.0

_sweepers: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def ensure_sweeping() -> None:
    """Start this loop's sweeper unless it runs (idempotent, cheap). Only on
    the main thread's loop (daphne's), as instance_registry does."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    task = _sweepers.get(loop)
    if task is None or task.done():
        for stale in [other for other in _sweepers if other.is_closed()]:
            del _sweepers[stale]
        _sweepers[loop] = loop.create_task(_sweep_forever())


def sweep_interval() -> float:
    return min(MAX_SWEEP_SECONDS, settings.BRIDGE_STREAM_IDLE_TIMEOUT / 4)


async def _sweep_forever() -> None:
    failing = False
    while True:
        await asyncio.sleep(sweep_interval())
        try:
            await streaming.finish_due_streams()
        except (LayerUnavailable, DatabaseError) as exc:
            if not failing:  # said once per outage, not every sweep
                logger.warning("stream sweep failed: %s", type(exc).__name__)
            failing = True
        except Exception:
            logger.exception("stream sweep failed")
        else:
            failing = False
