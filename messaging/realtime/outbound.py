"""What a connection sends, in order and within its budget (SPEC §2, §5, §8, §11).

A connection reads several streams: its user's personal stream and every topic
it subscribes to. Per stream, the cursor is the highest `seq` this connection
has sent. Live events are sent in `seq` order: one already sent is dropped, one
that skips ahead first has the gap filled from the store. Resume, gap fill
and the heartbeat's catch-up write stored frames page by page, and only while
the connection's send window has room: a client that does not read is closed
with 4008 `slow_client` once more than BRIDGE_MAX_PENDING_BYTES wait unsent,
and resumes with `last_seq`.

`StreamSender` is a part of BridgeConsumer (messaging/realtime/consumers.py), which
provides `user_id`, `stream` (the personal one), `cursor` (its cursor),
`topics` (topic -> TopicState), `stream_lock`, `close_code`, `send` and
`_close_with_error`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from django.conf import settings

from bridge_project.daphne_send_window import (
    FRAME_HEADER_BYTES,
    SCOPE_EXTENSION,
    SendWindow,
    payload_bytes,
)
from messaging import frames, metrics
from messaging.streams import history
from messaging.streams.namespaces import NamespaceRules
from messaging.ws_database import run_db


@dataclass(slots=True)
class TopicState:
    """One subscription of a connection: its cursor in the topic's stream."""

    cursor: int
    rules: NamespaceRules
    # Seqs this connection published itself, past its cursor: SPEC §8 gives
    # the publisher no copy, whether the message comes live or from the store.
    own: set[int] | None = None
    # The cursor at the last heartbeat: catch-up only when it has not moved.
    cursor_at_beat: int = -1


# How long an event that arrived ahead of its stream waits for the missing
# ones to arrive live before they are read from the store.
GAP_WAIT = 0.2
GAP_CHECK = "bridge.gap_check"


class StreamSender:
    user_id: str | None
    # Events that arrived ahead of their stream, per stream: seq -> (frame,
    # own); made when needed.
    held: dict[str, dict[int, tuple[str, bool]]] | None = None
    stream: str
    cursor: int
    # Made on the first subscribe: most connections never subscribe.
    topics: dict[str, TopicState] | None = None
    channel_name: str
    close_code: int | None
    stream_lock: asyncio.Lock
    # What the server has not yet written to this socket (daphne only).
    send_window: SendWindow | None = None

    def open_send_window(self) -> None:
        """Pick up the window daphne_send_window put in the scope, if any."""
        self.send_window = self.scope.get("extensions", {}).get(SCOPE_EXTENSION)

    async def bridge_deliver(self, event: dict) -> None:
        """A message for one of this connection's streams (or for everyone);
        each stream's messages are sent in seq order."""
        if self.user_id is None or self.close_code is not None:
            return  # a refused handshake's groups, or closing: resume has it
        seq = event.get("seq")  # absent from stream parts (packed by Redis)
        stream = event.get("stream") or (None if seq is None else self.stream)
        if stream is not None and self.cursor_of(stream) is None:
            return  # a topic this connection has just left
        # The connection that published a topic message gets no copy (§8).
        own = event.get("exclude") == self.channel_name or self._is_own(stream, seq)
        if seq is None:
            if not own:
                await self._send_text(event["frame"])
                metrics.messages_delivered_total.inc()
            return
        async with self.stream_lock:
            cursor = self.cursor_of(stream)
            if cursor is None or seq <= cursor:
                return  # left meanwhile; or already sent, from the store or before
            if seq > cursor + 1:
                self._hold(stream, seq, event["frame"], own)
                return
            await self._send_live(stream, seq, event["frame"], own)
            await self._send_held(stream)

    async def bridge_gap_check(self, event: dict) -> None:
        """GAP_WAIT after an event arrived ahead of its stream (queued by
        _hold, never sent through the layer): what is still missing comes
        from the store, then what was held goes out."""
        stream = event["stream"]
        held = self.held.get(stream) if self.held else None
        if held is None or self.close_code is not None:
            return
        async with self.stream_lock:
            cursor = self.cursor_of(stream)
            if cursor is None:
                del self.held[stream]  # left the topic meanwhile
                return
            first_held = min(held)
            if first_held > cursor + 1:
                # The earlier messages' events are lost: the store has them.
                recovered = await self._send_stored(stream, upto_seq=first_held - 1)
                metrics.messages_recovered_total.inc(recovered)
            await self._send_held(stream)

    async def _send_live(self, stream: str, seq: int, frame: str, own: bool) -> None:
        if not own:
            await self._send_text(frame)
            metrics.messages_delivered_total.inc()
        self._move_cursor(stream, seq)

    def _hold(self, stream: str, seq: int, frame: str, own: bool) -> None:
        """Keep an event that arrived ahead of its stream for up to GAP_WAIT.

        Concurrent pushes to one topic publish from different request threads
        and processes, so their events often arrive out of seq order; the
        missing one is usually milliseconds behind. Reading the store at once
        cost every subscriber a query for each such swap: 62 % of a process's
        CPU in S6 (docs/performance.md)."""
        if self.held is None:
            self.held = {}
        held = self.held.setdefault(stream, {})
        if not held:
            inbox = self.channel_layer.inbox(self.channel_name)
            asyncio.get_running_loop().call_later(
                GAP_WAIT, inbox.put_nowait, {"type": GAP_CHECK, "stream": stream}
            )
        held[seq] = (frame, own)

    async def _send_held(self, stream: str) -> None:
        """Send held events that now follow the cursor; drop those behind it."""
        held = self.held.get(stream) if self.held else None
        while held and self.close_code is None:
            cursor = self.cursor_of(stream)
            if cursor is None:
                break
            for seq in [seq for seq in held if seq <= cursor]:
                del held[seq]  # already sent from the store
            if cursor + 1 not in held:
                break
            frame, own = held.pop(cursor + 1)
            await self._send_live(stream, cursor + 1, frame, own)
        # Still a gap: the check _hold scheduled fills it from the store.
        if not held and self.held is not None:
            self.held.pop(stream, None)
            if not self.held:
                self.held = None

    def cursor_of(self, stream: str) -> int | None:
        """This connection's cursor in a stream; None when it does not read it."""
        if stream == self.stream:
            return self.cursor
        state = self.topics.get(stream) if self.topics else None
        return None if state is None else state.cursor

    def _move_cursor(self, stream: str, seq: int) -> None:
        if stream == self.stream:
            self.cursor = seq
        elif self.topics and stream in self.topics:
            state = self.topics[stream]
            state.cursor = seq
            if state.own:
                state.own = {own for own in state.own if own > seq} or None

    def published(self, topic: str, seq: int | None) -> None:
        """This connection published `seq` to `topic`: never send it back."""
        state = self.topics.get(topic) if self.topics else None
        if state is not None and seq is not None and seq > state.cursor:
            state.own = (state.own or set()) | {seq}

    def _is_own(self, stream: str | None, seq: int | None) -> bool:
        state = self.topics.get(stream) if self.topics and stream else None
        return bool(state and state.own and seq in state.own)

    async def _send_stored(
        self,
        stream: str,
        *,
        upto_seq: int,
        announce_truncation: bool = False,
        include_own: bool = False,
    ) -> int:
        """Send the stream's stored messages after its cursor up to `upto_seq`,
        page by page; this connection's own topic messages only when asked
        (`subscribe` with `since`: the client wants everything after it)."""
        sent = 0
        cursor = self.cursor_of(stream)
        while cursor is not None and cursor < upto_seq and self.close_code is None:
            page = await run_db(
                history.frames_after, stream, after_seq=cursor, upto_seq=upto_seq
            )
            if not page:
                break
            if announce_truncation and sent == 0 and page[0].seq > cursor + 1:
                topic = None if stream == self.stream else stream
                await self._send_frame(
                    frames.history_truncated_frame(oldest_seq=page[0].seq, topic=topic)
                )
            for stored in page:
                if not include_own and self._is_own(stream, stored.seq):
                    cursor = stored.seq
                    self._move_cursor(stream, cursor)
                    continue
                if not await self._send_paced(stored.text):
                    metrics.messages_delivered_total.inc(sent)
                    return sent  # closed as slow: the client resumes from its seq
                cursor = stored.seq
                self._move_cursor(stream, cursor)
                sent += 1
            if len(page) < history.PAGE_SIZE:
                break
        # A seq missing from the store (purged by retention) is stepped over.
        if cursor is not None and cursor < upto_seq:
            self._move_cursor(stream, upto_seq)
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
            # Unpaused, the window holds at most Twisted's bufferSize (64 KB),
            # the least the budget may be: the settings lookup (1.6 % of a
            # topic's fan-out when made per frame) waits for a paused window.
            and window.paused
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
