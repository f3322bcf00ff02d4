"""RSS of one daphne while clients connect and disconnect, round after round.

    python -m bench.connection_churn [--connections 500] [--rounds 6]

Each round opens `--connections` WebSockets (100 at a time), waits for their
`connected` frames, closes them all and prints the server's RSS. A server that
frees what a closed connection held stays nearly flat after the first round;
one that leaves reference cycles behind (bridge_project/daphne_connection_cycles.py)
grows by the same step every round until a full garbage collection.
`--app-dir` measures another checkout (e.g. a `git archive` of an older commit).
"""

from __future__ import annotations

import argparse
import asyncio
import json

import websockets

from bench.machine import rss_kb
from bench.targets import BridgeTarget


async def _open(url: str, user_id: str):
    ws = await websockets.connect(f"{url}/ws?user_id={user_id}", ping_interval=None)
    json.loads(await ws.recv())  # `connected`
    return ws


async def churn(target: BridgeTarget, connections: int, rounds: int) -> list[float]:
    url, pid = target.ws_urls[0], target.server_pids()[0]
    samples = []
    print(f"start: rss {rss_kb(pid) / 1024:.1f} MB", flush=True)
    for round_number in range(1, rounds + 1):
        sockets = []
        for start in range(0, connections, 100):
            batch = range(start, min(connections, start + 100))
            sockets += await asyncio.gather(*(_open(url, f"churn-{i}") for i in batch))
        await asyncio.gather(*(ws.close() for ws in sockets))
        await asyncio.sleep(2)  # the server finishes its disconnects
        samples.append(rss_kb(pid) / 1024)
        print(
            f"round {round_number}: {connections * round_number} connections opened"
            f" and closed, rss {samples[-1]:.1f} MB",
            flush=True,
        )
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--app-dir", default=".")
    args = parser.parse_args(argv)
    with BridgeTarget(processes=1, app_dir=args.app_dir) as target:
        samples = asyncio.run(churn(target, args.connections, args.rounds))
    if len(samples) > 1:
        step = (samples[-1] - samples[0]) / (len(samples) - 1) / args.connections
        print(f"growth after round 1: {step * 1024:.1f} KB per connection")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
