"""bridge_project.daphne_light_queue against daphne 4.2.3, which it copies.
If the first two tests fail after an upgrade, re-read daphne's
Server.create_application and its protocols' use of the queue."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
import textwrap
import types

import daphne.http_protocol
import daphne.ws_protocol
import pytest
from daphne.server import Server

from bridge_project import daphne_light_queue, daphne_send_window
from bridge_project.channel_layer import ChannelInbox


@pytest.fixture(autouse=True)
def installed():
    # As bridge_project.asgi does: the send window installs the light queue.
    daphne_send_window.install()


def body_without_docstring(function) -> str:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    definition = tree.body[0]
    if isinstance(definition.body[0], ast.Expr) and isinstance(
        definition.body[0].value, ast.Constant
    ):
        definition.body = definition.body[1:]
    return ast.dump(ast.Module(definition.body, []))


def test_the_copy_is_daphnes_create_application_with_the_queue_swapped():
    upstream = daphne_light_queue.create_application.upstream
    assert upstream.__module__ == "daphne.server"
    upstream_body = body_without_docstring(upstream).replace(
        "Call(func=Attribute(value=Name(id='asyncio', ctx=Load()), attr='Queue', "
        "ctx=Load())",
        "Call(func=Name(id='ChannelInbox', ctx=Load())",
    )
    assert upstream_body == body_without_docstring(
        daphne_light_queue.create_application
    )


def test_daphnes_protocols_only_put_into_the_queue():
    used = set()
    for module in (daphne.http_protocol, daphne.ws_protocol):
        used |= set(re.findall(r"application_queue\.(\w+)", inspect.getsource(module)))
    assert used == {"put_nowait"}


async def test_a_connection_gets_a_channel_inbox_and_its_messages_in_order():
    received = []

    async def application(scope, receive, send):
        while (message := await receive())["type"] != "websocket.disconnect":
            received.append(message["type"])

    protocol = object()
    server = types.SimpleNamespace(
        connections={protocol: {}},
        application=application,
        handle_reply=lambda protocol, message: None,
    )
    # Through whatever wraps it, as daphne calls it.
    queue = Server.create_application(server, protocol, {"type": "websocket"})
    assert isinstance(queue, ChannelInbox)
    for kind in ("websocket.connect", "websocket.receive", "websocket.disconnect"):
        queue.put_nowait({"type": kind})
    await asyncio.wait_for(server.connections[protocol]["application_instance"], 2)
    assert received == ["websocket.connect", "websocket.receive"]


def test_an_idle_inbox_is_a_fraction_of_an_asyncio_queue():
    def deep_size(queue) -> int:
        parts = (
            [queue, *vars(queue).values()] if hasattr(queue, "__dict__") else [queue]
        )
        return sum(sys.getsizeof(part) for part in parts)

    assert sys.getsizeof(ChannelInbox()) * 10 < deep_size(asyncio.Queue())
