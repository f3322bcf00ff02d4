"""What a streamed message's part costs the server (SPEC §9), against the frames
and pushes it replaces.

    python -m bench.stream_cost                 # 2,000 items per way
    python -m bench.stream_cost --items 500

Starts a fresh redis-server, a migrated SQLite file and one daphne (open mode,
client limits lifted), connects a receiving user and a bot, and for each way
of sending N items to that user measures the CPU time daphne and redis-server
spent from the first item sent to the last one received:

- `ws stream part`: N `stream` frames of one stream, then the final part
  (the one stored message);
- `ws message`: N `message` frames from the bot, each stored (what a bot that
  cannot stream sent before);
- `ws signal`: N `signal` frames (live only: the floor for a live frame);
- `http stream part`: N `POST /sse/push` with `stream_id`, then the final one;
- `http push`: N ordinary `POST /sse/push`, each stored.

Prints one table, CPU µs per item and the ratio to `ws message` (WebSocket) or
`http push` (HTTP). One run, one machine: compare rows, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx
import psutil
import websockets

from bench.machine import machine_info
from bench.one_daphne import one_daphne
from bench.report import header
from bench.slow_reader_rss import wait_ready

LIFTED = {
    "BRIDGE_CLIENT_MESSAGES_PER_MINUTE": "100000000",
    "BRIDGE_CLIENT_SIGNALS_PER_MINUTE": "100000000",
    "BRIDGE_THROTTLE_ADDRESS_RATE": "100000000/minute",
    "BRIDGE_MAX_MESSAGE_BYTES": "10000000",
}


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def receive_until(ws, frame_type: str, count: int) -> None:
    seen = 0
    while seen < count:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if frame["type"] == frame_type:
            seen += 1
        elif frame["type"] == "error":
            raise RuntimeError(frame)


async def measure(port: int, daphne: psutil.Process, redis: psutil.Process, n: int):
    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    await wait_ready(base)
    user = await websockets.connect(f"{ws_base}/ws?user_id=reader", max_queue=None)
    bot = await websockets.connect(f"{ws_base}/ws?user_id=ci_bot", max_queue=None)
    for ws in (user, bot):
        await ws.recv()  # connected
    http = httpx.AsyncClient(timeout=30)
    rows = []

    async def timed(name: str, send, frame_type: str, count: int) -> None:
        await asyncio.sleep(0.5)  # let the previous way's work settle
        daphne_before, redis_before = cpu_seconds(daphne), cpu_seconds(redis)
        started = time.perf_counter()
        receiving = asyncio.create_task(receive_until(user, frame_type, count))
        await send()
        await receiving
        elapsed = time.perf_counter() - started
        rows.append(
            {
                "way": name,
                "items": n,
                "daphne_us": (cpu_seconds(daphne) - daphne_before) / n * 1e6,
                "redis_us": (cpu_seconds(redis) - redis_before) / n * 1e6,
                "wall_s": elapsed,
            }
        )

    async def ws_stream() -> None:
        for i in range(n):
            await bot.send(json.dumps(_part("ws", i)))
        await bot.send(json.dumps({**_part("ws", 0), "delta": "", "final": True}))

    async def ws_messages() -> None:
        for i in range(n):
            await bot.send(
                json.dumps({"type": "message", "to": "reader", "text": f"t{i}"})
            )

    async def ws_signals() -> None:
        for _ in range(n):
            await bot.send(
                json.dumps({"type": "signal", "event": "typing", "to": "reader"})
            )

    async def http_parts() -> None:
        for i in range(n):
            body = {"user_id": "reader", "stream_id": "http", "delta": f"t{i} "}
            (await http.post(f"{base}/sse/push", json=body)).raise_for_status()
        body = {"user_id": "reader", "stream_id": "http", "final": True}
        (await http.post(f"{base}/sse/push", json=body)).raise_for_status()

    async def http_pushes() -> None:
        for i in range(n):
            body = {"user_id": "reader", "message": f"t{i}", "sender": "ci_bot"}
            (await http.post(f"{base}/sse/push", json=body)).raise_for_status()

    # Each way ends when the receiver has every item (a stream: its parts).
    await timed("ws stream part", ws_stream, "stream", n)
    await receive_until(user, "message", 1)  # the stored message
    await timed("ws message", ws_messages, "message", n)
    await timed("ws signal", ws_signals, "signal", n)
    await timed("http stream part", http_parts, "stream", n)
    await receive_until(user, "message", 1)
    await timed("http push", http_pushes, "message", n)
    await http.aclose()
    await user.close()
    await bot.close()
    return rows


def _part(stream_id: str, i: int) -> dict:
    return {"type": "stream", "stream_id": stream_id, "to": "reader", "delta": f"t{i} "}


def print_table(rows: list[dict]) -> None:
    base = {row["way"]: row for row in rows}
    print("| way | items | daphne CPU µs/item | vs | redis CPU µs/item | wall s |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        against = base["ws message" if row["way"].startswith("ws") else "http push"]
        print(
            f"| {row['way']} | {row['items']:,} | {row['daphne_us']:.0f} | "
            f"{row['daphne_us'] / against['daphne_us']:.2f}x | "
            f"{row['redis_us']:.0f} | {row['wall_s']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    args = parser.parse_args()
    print(header(machine_info()))
    with one_daphne(**LIFTED) as server:
        rows = asyncio.run(
            measure(
                server.port,
                psutil.Process(server.pid),
                psutil.Process(server.redis_pid),
                args.items,
            )
        )
    print_table(rows)


if __name__ == "__main__":
    main()
