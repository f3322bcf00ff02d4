"""What a connection sends, in order and within its budget (SPEC §2, §5, §11).

The cursor is the highest `seq` this connection has sent. Live events are sent
in `seq` order: one already sent is dropped, one that skips ahead first has the
gap filled from the store. Resume, gap fill and the heartbeat's catch-up write
stored frames page by page, and only while the connection's send window has
room: a client that does not read is closed with 4008 `slow_client` once more
than BRIDGE_MAX_PENDING_BYTES wait unsent, and resumes with `last_seq`.

`StreamSender` is a part of BridgeConsumer (messaging/realtime/consumers.py), which
provides `user_id`, `cursor`, `stream_lock`, `close_code`, `send` and
`_close_with_error`.
"""

from __future__ import annotations

import asyncio

from django.conf import settings

from bridge_project.daphne_send_window import (
    FRAME_HEADER_BYTES,
    SCOPE_EXTENSION,
    SendWindow,
    payload_bytes,
)
from messaging import frames, metrics
from messaging.streams import history
from messaging.ws_database import run_db


class StreamSender:
    user_id: str | None
    cursor: int
    close_code: int | None
    stream_lock: asyncio.Lock
    # What the server has not yet written to this socket (daphne only).
    send_window: SendWindow | None = None

    def open_send_window(self) -> None:
        """Pick up the window daphne_send_window put in the scope, if any."""
        self.send_window = self.scope.get("extensions", {}).get(SCOPE_EXTENSION)

    async def bridge_deliver(self, event: dict) -> None:
        """A message for this connection's user (or everyone); sent in seq order."""
        if self.user_id is None or self.close_code is not None:
            return  # a refused handshake's groups, or closing: resume has it
        seq = event["seq"]
        if seq is None:
            await self._send_text(event["frame"])
            metrics.messages_delivered_total.inc()
            return
        async with self.stream_lock:
            if seq <= self.cursor:
                return  # already sent, from the store or an earlier event
            if seq > self.cursor + 1:
                # An earlier message's event is late or lost: the store has it.
                recovered = await self._send_stored(upto_seq=seq - 1)
                metrics.messages_recovered_total.inc(recovered)
                if self.close_code is not None:
                    return
            await self._send_text(event["frame"])
            metrics.messages_delivered_total.inc()
            self.cursor = seq

    async def _send_stored(self, *, upto_seq: int, announce_truncation=False) -> int:
        """Send stored messages after the cursor up to `upto_seq`, page by page."""
        sent = 0
        while self.cursor < upto_seq and self.close_code is None:
            page = await run_db(
                history.frames_after,
                self.user_id,
                after_seq=self.cursor,
                upto_seq=upto_seq,
            )
            if not page:
                break
            if announce_truncation and sent == 0 and page[0].seq > self.cursor + 1:
                await self._send_frame(
                    frames.history_truncated_frame(oldest_seq=page[0].seq)
                )
            for stored in page:
                if not await self._send_paced(stored.text):
                    metrics.messages_delivered_total.inc(sent)
                    return sent  # closed as slow: the client resumes from its seq
                self.cursor = stored.seq
                sent += 1
            if len(page) < history.PAGE_SIZE:
                break
        # A seq missing from the store (purged by retention) is stepped over.
        self.cursor = max(self.cursor, upto_seq)
        metrics.messages_delivered_total.inc(sent)
        return sent

    async def _send_frame(self, frame: dict) -> None:
        await self._send_text(frames.encode(frame))

    async def _send_text(self, text: str) -> None:
        """Send one frame; close with 4008 once too much is unsent (SPEC §11)."""
        await self.send(text_data=text)
        window = self.send_window
        if (
            window is not None
            and window.unsent > settings.BRIDGE_MAX_PENDING_BYTES
            and self.close_code is None
        ):
            await self._close_slow()

    async def _send_paced(self, text: str) -> bool:
        """Send a stored frame without taking the unsent bytes past the budget:
        wait for the transport to drain first, or close with 4008 if it does not
        within BRIDGE_DRAIN_TIMEOUT. False once the connection is closing."""
        window = self.send_window
        if window is not None and window.paused:
            size = payload_bytes(text) + FRAME_HEADER_BYTES
            if window.unsent + size > settings.BRIDGE_MAX_PENDING_BYTES:
                try:
                    await asyncio.wait_for(
                        window.drained(), settings.BRIDGE_DRAIN_TIMEOUT
                    )
                except TimeoutError:
                    await self._close_slow()
        if self.close_code is not None or (window is not None and window.closed):
            return False
        await self._send_text(text)
        return self.close_code is None

    async def _close_slow(self) -> None:
        await self._close_with_error(
            4008, "slow_client", "too much unsent data; resume with last_seq"
        )
