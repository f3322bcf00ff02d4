"""Topic subscriptions (SPEC §8): subscribe, resubscribe from the last seq after
every reconnect (`since`), unsubscribe."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.exceptions import ConnectionClosed

from bridge_client.connection import ClientBase, Connection
from bridge_client.dispatch import Handler
from bridge_client.errors import AckTimeout, FrameRefused
from bridge_client.events import Subscription


class Topics(ClientBase):
    """The part of `Client` that keeps its topic subscriptions."""

    async def subscribe(
        self,
        topic: str,
        handler: Handler | None = None,
        *,
        since: int | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """Subscribe (again after every reconnect, from the last seq queued) and
        wait for the first `subscribed`. `since` overrides the saved position;
        without either, messages from now on."""
        if since is not None:
            self._queued.topics[topic] = since
            self._handled.topics[topic] = since
        subscription = self._subscriptions.get(topic)
        if subscription is None:
            subscription = Subscription(topic, handler)
            self._subscriptions[topic] = subscription
        elif handler is not None:
            subscription.handler = handler
        subscription._first = asyncio.get_running_loop().create_future()
        if self._connection is not None and self._connected.is_set():
            self._send_subscribe(self._connection, subscription)
        try:
            return await asyncio.wait_for(
                asyncio.shield(subscription._first), timeout or self.ack_timeout
            )
        except TimeoutError:
            raise AckTimeout(f"no subscribed for {topic}") from None

    def _send_subscribe(
        self, connection: Connection, subscription: Subscription
    ) -> None:
        frame: dict[str, Any] = {"type": "subscribe", "topic": subscription.topic}
        since = self._queued.topics.get(subscription.topic)
        if since is not None:
            frame["since"] = since
        frame["ref"] = f"s{next(self._refs)}"
        connection.tasks.append(
            asyncio.create_task(self._send_quietly(connection, frame))
        )

    async def _send_quietly(
        self, connection: Connection, frame: dict[str, Any]
    ) -> None:
        with contextlib.suppress(ConnectionClosed):
            await connection.socket.send(json.dumps(frame))

    def _on_subscribed(self, frame: dict[str, Any]) -> None:
        subscription = self._subscriptions.get(str(frame.get("topic")))
        if subscription is None:
            return
        subscription.seq = frame.get("seq")
        subscription.recovered = frame.get("recovered")
        subscription.read_seq = frame.get("read_seq")
        subscription.unread = frame.get("unread")
        subscription.active = True
        topic = subscription.topic
        if self._queued.topics.get(topic) is None and subscription.seq is not None:
            # No resume point: from the topic's current seq on (SPEC §8).
            self._queued.topics[topic] = subscription.seq
            self._handled.topics.setdefault(topic, subscription.seq)
        if subscription._first is not None and not subscription._first.done():
            subscription._first.set_result(subscription)
        self._emit("subscribed", subscription)

    def _refuse_subscription(
        self, subscription: Subscription, frame: dict[str, Any]
    ) -> None:
        if subscription._first is not None and not subscription._first.done():
            subscription._first.set_exception(FrameRefused(frame))
        else:
            self._emit("error", frame)

    def _on_unsubscribed(self, frame: dict[str, Any]) -> None:
        self._resolve(frame)
        topic = str(frame.get("topic"))
        subscription = self._subscriptions.pop(topic, None)
        if subscription is not None:
            subscription.active = False
        self._emit("unsubscribed", frame)

    async def unsubscribe(self, topic: str, *, timeout: float | None = None) -> None:
        """Leave a topic; it is not subscribed again after a reconnect."""
        subscription = self._subscriptions.pop(topic, None)
        if subscription is not None and subscription.active:
            await self._request({"type": "unsubscribe", "topic": topic}, timeout)
