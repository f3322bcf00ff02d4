"""How long a graceful shutdown takes: N connections on one daphne, then SIGTERM.

    python -m bench.shutdown_drain                    # 1,000 connections
    python -m bench.shutdown_drain --connections 3000 --grace 20

Starts a fresh redis-server, a migrated SQLite file and one daphne (open mode,
BRIDGE_SHUTDOWN_GRACE from `--grace`), opens the connections (one user each,
in bursts of 100), sends the process SIGTERM and reports:

- the drain as the server logged it (`drained after X s`, or `stopped
  draining` when the grace ran out first);
- how long after the signal the process exited, and its exit status;
- the close codes the clients saw (all 1001 when the drain finished) and the
  range of the `retry_after_ms` hints they were given.

The clients run in this process, on the same machine, and answering N close
handshakes is part of what is measured: compare figures from one machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import websockets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge_project.embedded_redis import EmbeddedRedis  # noqa: E402
from tests.support.daphne import running_daphnes  # noqa: E402

BURST = 100


async def _open(base_ws: str, n: int) -> websockets.ClientConnection:
    connection = await websockets.connect(
        f"{base_ws}/ws?user_id=drain{n}", open_timeout=60, ping_interval=None
    )
    await connection.recv()  # connected
    return connection


async def _watch(connection, codes: collections.Counter, hints: list[int]) -> None:
    try:
        async for raw in connection:
            frame = json.loads(raw)
            if frame.get("code") == "going_away":
                hints.append(frame["retry_after_ms"])
    except websockets.ConnectionClosed:
        pass
    received = connection.protocol.close_rcvd
    codes[received.code if received is not None else "no close"] += 1


async def measure(connections: int, grace: float) -> None:
    redis = EmbeddedRedis().start()
    workdir = Path(tempfile.mkdtemp(prefix="bridge-drain-"))
    try:
        with running_daphnes(
            redis.url,
            workdir,
            1,
            BRIDGE_SHUTDOWN_GRACE=str(grace),
            BRIDGE_LOG_FORMAT="text",
        ) as (server,):
            clients = []
            for start in range(0, connections, BURST):
                end = min(connections, start + BURST)
                clients += await asyncio.gather(
                    *(_open(server.ws, n) for n in range(start, end))
                )
            codes: collections.Counter = collections.Counter()
            hints: list[int] = []
            watching = [asyncio.create_task(_watch(c, codes, hints)) for c in clients]
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            status = await asyncio.to_thread(server.process.wait, grace + 10)
            exited = time.monotonic() - signalled
            await asyncio.gather(*watching)
            drain = [
                line.split(" shutting down: ")[1]
                for line in server.log().splitlines()
                if "daphne_shutdown shutting down: " in line and " after " in line
            ]
    finally:
        redis.stop()
    print(f"connections: {connections}, BRIDGE_SHUTDOWN_GRACE: {grace} s")
    print(f"server: {drain[-1] if drain else 'no drain line logged'}")
    print(f"exited {exited:.2f} s after SIGTERM, status {status}")
    print(f"close codes seen: {dict(codes)}")
    if hints:
        print(f"retry_after_ms: {min(hints)} to {max(hints)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--grace", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(measure(args.connections, args.grace))


if __name__ == "__main__":
    main()
