"""A send to a client that has just gone away (uvicorn raises, daphne drops it)."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.layers import get_channel_layer

from bridge_project.asgi import application
from messaging import presence
from messaging.streams import groups
from tests.support.ids import fresh_user_id

TIMEOUT = 5


class GoneClient:
    """An ASGI server's side of one WebSocket whose sends fail once the client left,
    as uvicorn's do (ClientDisconnected is an OSError)."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict] = asyncio.Queue()
        self.sent: list[dict] = []
        self.gone = False
        self.connected = asyncio.Event()

    async def receive(self) -> dict:
        return await self.incoming.get()

    async def send(self, message: dict) -> None:
        if self.gone:
            raise OSError("client disconnected")
        self.sent.append(message)
        if message["type"] == "websocket.send" and '"connected"' in message["text"]:
            self.connected.set()

    def frames(self) -> list[dict]:
        return [
            json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"
        ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_delivery_racing_a_disconnect_ends_the_connection_cleanly():
    user = fresh_user_id("gone")
    client = GoneClient()
    scope = {
        "type": "websocket",
        "path": "/ws",
        "query_string": f"user_id={user}".encode(),
        "headers": [(b"host", b"localhost")],
        "subprotocols": [],
        "client": ("127.0.0.1", 50001),
        "server": ("localhost", 80),
    }
    await client.incoming.put({"type": "websocket.connect"})
    app = asyncio.ensure_future(application(scope, client.receive, client.send))
    await asyncio.wait_for(client.connected.wait(), TIMEOUT)
    assert client.frames()[0]["type"] == "connected"
    assert (await presence.connection_counts([user]))[user] == 1

    client.gone = True
    await get_channel_layer().group_send(
        groups.user_group(user),
        {"type": groups.DELIVER_EVENT, "seq": None, "frame": '{"type":"message"}'},
    )
    await asyncio.sleep(0.2)  # the delivery meets the closed socket first
    await client.incoming.put({"type": "websocket.disconnect", "code": 1006})

    # The application ends without an error, and the disconnect was handled.
    await asyncio.wait_for(app, TIMEOUT)
    assert (await presence.connection_counts([user]))[user] == 0
