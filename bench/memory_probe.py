"""Bridge's ASGI application with one extra URL, for bench.connection_memory only.

`GET /bench/memory?snapshot=PATH` runs a full garbage collection in the server
and, when the process runs under tracemalloc (PYTHONTRACEMALLOC), dumps a
snapshot of its Python allocations to PATH. Every other request goes to
`bridge_project.asgi:application` untouched: the wrapper is a plain function
call that returns Bridge's own coroutine, so it adds no frame or task to a
connection. Never served outside the benchmark.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from urllib.parse import parse_qs

from bridge_project.asgi import application as bridge_application

PATH = "/bench/memory"


async def _memory(scope: dict, receive, send) -> None:
    collected = gc.collect()
    query = parse_qs(scope.get("query_string", b"").decode())
    snapshot = query.get("snapshot", [""])[0]
    if snapshot and tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(snapshot)
    body = json.dumps(
        {"collected": collected, "traced": tracemalloc.get_traced_memory()[0]}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def application(scope: dict, receive, send):
    """Runs for every connection; returns the coroutine daphne schedules."""
    if scope["type"] == "http" and scope["path"] == PATH:
        return _memory(scope, receive, send)
    return bridge_application(scope, receive, send)


# A function, not a coroutine function: tell asgiref it takes ASGI 3's one call.
application._asgi_single_callable = True  # type: ignore[attr-defined]
