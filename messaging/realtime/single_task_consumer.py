"""channels' WebSocket consumer with one task per connection instead of two.

channels waits for the client's `receive` and the channel layer's `receive`
with a task each and an asyncio.wait over both, all alive for as long as the
socket is open (about 3 KB per idle connection). Here one task moves the
client's events into the channel's inbox (`ChannelInbox`, next to the layer's
messages), and the consumer's own coroutine handles them one at a time in
arrival order, as channels does. Bridge's consumer (messaging/realtime/consumers.py)
builds on it; nothing here knows about streams or frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from bridge_project.channel_layer import ChannelInbox, GroupPubSubChannelLayer

logger = logging.getLogger(__name__)


class SingleTaskConsumer(AsyncWebsocketConsumer):
    async def __call__(self, scope, receive, send) -> None:
        layer = get_channel_layer(self.channel_layer_alias)
        if not isinstance(layer, GroupPubSubChannelLayer):
            return await super().__call__(scope, receive, send)
        self.scope = scope
        self.base_send = _dropping_sends_after_the_client_left(send)
        self.channel_layer = layer
        self.channel_name = await layer.new_channel()
        inbox = layer.inbox(self.channel_name)
        forwarding = asyncio.ensure_future(
            _forward_client_events(receive, inbox, self.client_event_arrived)
        )
        try:
            while True:
                entry = await inbox.get()
                if isinstance(entry, Exception):
                    raise entry
                if isinstance(entry, bytes):  # from the layer, still serialized
                    entry = layer.deserialize_shared(entry)
                await self.dispatch(entry)
        except StopConsumer:
            pass
        finally:
            forwarding.cancel()
            # asyncio.wait, unlike awaiting the task, raises only if we are cancelled.
            await asyncio.wait([forwarding])
            await self.ended()
            layer.close_channel(self.channel_name)

    async def dispatch(self, message):
        # Channels closes stale database connections through a thread hop before
        # every event; database calls here go through their own executor, which
        # already does, so deliveries stay on the event loop.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def ended(self) -> None:
        """Called once the loop is over, whatever ended it (the client leaving,
        an error, a cancel): release what the connection held."""

    def client_event_arrived(self) -> None:
        """Called as each client event arrives, before it waits its turn in
        the inbox behind layer messages: what proves a client alive must not
        wait for a busy consumer to get to it."""


def _dropping_sends_after_the_client_left(send):
    """The server's `send`, quiet about a socket that has just closed.

    daphne drops a send to a closed socket; uvicorn raises ClientDisconnected
    (an OSError). Either way the client's disconnect event is next in the
    inbox, and handling it is what cleans up, so the consumer must not end
    with an error before it gets there."""

    async def send_to_client(message) -> None:
        try:
            await send(message)
        except OSError:
            logger.debug("send to a closed WebSocket dropped: %s", message["type"])

    return send_to_client


async def _forward_client_events(
    receive, inbox: ChannelInbox, arrived: Callable[[], None]
) -> None:
    """Move the client's ASGI events into the inbox the consumer reads."""
    try:
        while True:
            event = await receive()
            arrived()
            inbox.put_nowait(event)
    except Exception as error:
        inbox.put_nowait(error)  # the consumer raises it, as under channels
