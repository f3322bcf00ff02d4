"""What a client that stops reading costs a daphne process in memory.

    python -m bench.slow_reader_rss                    # 3,000 pushes of 60 KB
    python -m bench.slow_reader_rss --pushes 1000 --size 30000

Starts a fresh redis-server, a migrated SQLite file and one daphne (open mode),
connects one client whose socket has a small receive buffer and whose reader
pauses after one unread frame, then pushes `--pushes` messages of `--size`
bytes to its user, and prints daphne's RSS before and after (and how the
connection ended: 4008 once BRIDGE_MAX_PENDING_BYTES are unsent). Before the
send window (issue 12) the RSS grew with every push: 106 -> 317 MB for 3,000
pushes of 60 KB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from pathlib import Path

import httpx
import psutil
import websockets

from bench.one_daphne import one_daphne, wait_ready

REPO = Path(__file__).resolve().parents[1]


async def stalled_client(port: int, user: str) -> websockets.ClientConnection:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    connection = await websockets.connect(
        f"ws://127.0.0.1:{port}/ws?user_id={user}",
        sock=sock,
        max_queue=1,
        ping_interval=None,
    )
    await connection.recv()  # `connected`; nothing is read after it
    return connection


async def measure(port: int, pid: int, pushes: int, size: int) -> dict:
    base = f"http://127.0.0.1:{port}"
    await wait_ready(base)
    process = psutil.Process(pid)
    connection = await stalled_client(port, "stalled")
    before = process.memory_info().rss
    blob = "x" * size
    async with httpx.AsyncClient(timeout=30) as http:
        for n in range(pushes):
            reply = await http.post(
                f"{base}/sse/push",
                json={"user_id": "stalled", "data": {"n": n, "blob": blob}},
            )
            reply.raise_for_status()
    await asyncio.sleep(2)  # past the close handshake's 1 s timeout
    after = process.memory_info().rss
    connection.transport.abort()
    return {
        "pushes": pushes,
        "size": size,
        "rss_before_mb": round(before / 1e6, 1),
        "rss_after_mb": round(after / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=3000)
    parser.add_argument("--size", type=int, default=60_000)
    args = parser.parse_args()
    with one_daphne() as server:
        result = asyncio.run(measure(server.port, server.pid, args.pushes, args.size))
        text = server.log_text()
    result["closed_4008"] = "code=4008" in text
    result["tracebacks"] = text.count("Traceback")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
