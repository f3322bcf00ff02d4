"""Memory of an idle /ws connection in one daphne, and who owns it.

    python -m bench.connection_memory [--connections 2000] [--frames 25]

Two runs, each on a fresh daphne (bench/one_daphne.py: open mode, DEBUG=1, as
S4 ran it; address limits off and a heartbeat of an hour, because the client
answers no pings), a fresh Redis and SQLite file, serving `bench.memory_probe`
(Bridge's application plus `GET /bench/memory`, which runs a full garbage
collection in the server and can dump a tracemalloc snapshot):

1. **RSS** (daphne untraced): warm up (open and close a few connections, so
   that lazy imports, pools and the heartbeat exist), collect, read VmRSS;
   open `--connections` idle connections (one user each), wait, collect, read
   VmRSS again. The difference per connection is the figure S4 reports; Redis'
   RSS difference is printed beside it.
2. **Owners** (daphne started with PYTHONTRACEMALLOC=`--frames`, so tracemalloc
   traces every Python allocation from start-up; no server code changes): the
   same steps, with a snapshot in the server after each collection. The
   difference of the two snapshots, per allocation traceback, is put in one
   bucket by `owner_of` (the innermost frame that belongs to a known owner:
   daphne/Twisted/autobahn, the consumer, the channel layer, presence,
   Django/asgiref; generic code such as asyncio or redis-py is passed over, so
   a Redis client's buffers count for the module that called it). What
   tracemalloc does not see (C allocations outside Python's allocators, free
   space in pymalloc's arenas and malloc's heap) is RSS minus the traced total.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx
import websockets

from bench.machine import rss_kb
from bench.one_daphne import REPO, OneDaphne, one_daphne, wait_ready

APPLICATION = "bench.memory_probe:application"
WARM_UP = 50
# The bench's client opens thousands from one address, as bench.targets allows.
SERVER_ENV = {
    "BRIDGE_THROTTLE_ADDRESS_RATE": "none",
    "BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS": "0",
    # The client answers no heartbeat: a traced server takes minutes to open
    # them all, and a 60 s heartbeat timeout would close the first ones (4408).
    "BRIDGE_HEARTBEAT_INTERVAL": "3600",
    "BRIDGE_HEARTBEAT_TIMEOUT": "7200",
}

# Buckets, in the order the report prints them. A frame's filename picks the
# first rule it matches; frames that match none are generic and passed over.
OWNERS = ("daphne/twisted/autobahn", "consumer", "layer", "presence", "django/asgiref")
_RULES: tuple[tuple[str, str], ...] = (
    ("messaging/presence.py", "presence"),
    ("bridge_project/channel_layer.py", "layer"),
    ("bridge_project/layers.py", "layer"),
    ("/channels_redis/", "layer"),
    ("/messaging/", "consumer"),
    ("/channels/", "consumer"),
    ("/daphne/", "daphne/twisted/autobahn"),
    ("/twisted/", "daphne/twisted/autobahn"),
    ("/autobahn/", "daphne/twisted/autobahn"),
    ("/txaio/", "daphne/twisted/autobahn"),
    ("bridge_project/daphne_", "daphne/twisted/autobahn"),
    ("/django/", "django/asgiref"),
    ("/asgiref/", "django/asgiref"),
)
OTHER = "other"


def owner_of(filenames_innermost_first: Iterable[str]) -> str:
    """The bucket of one allocation, from its traceback's filenames (the frame
    that allocated first); OTHER when no frame belongs to a known owner."""
    for filename in filenames_innermost_first:
        normalized = filename.replace("\\", "/")
        for pattern, owner in _RULES:
            if pattern in normalized:
                return owner
    return OTHER


def breakdown(
    allocations: Iterable[tuple[Sequence[str], int]],
) -> dict[str, int]:
    """Bytes per owner for (filenames innermost first, bytes) pairs; every
    owner appears, OTHER last."""
    totals = dict.fromkeys((*OWNERS, OTHER), 0)
    for filenames, size in allocations:
        totals[owner_of(filenames)] += size
    return totals


def snapshot_growth(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot
) -> list[tuple[list[str], int, tracemalloc.Traceback]]:
    """Bytes gained per allocation traceback between two snapshots."""
    grown = []
    for diff in after.compare_to(before, "traceback"):
        if diff.size_diff:
            frames = list(diff.traceback)[::-1]  # tracemalloc lists oldest first
            grown.append(([f.filename for f in frames], diff.size_diff, diff.traceback))
    return grown


async def _open(url: str, user_id: str):
    ws = await websockets.connect(
        f"{url}/ws?user_id={user_id}", ping_interval=None, open_timeout=60
    )
    json.loads(await ws.recv())  # `connected`
    return ws


async def _open_many(url: str, prefix: str, count: int, at_once: int) -> list:
    sockets = []
    for start in range(0, count, at_once):
        batch = range(start, min(count, start + at_once))
        sockets += await asyncio.gather(*(_open(url, f"{prefix}{i}") for i in batch))
    return sockets


async def _collect(http: httpx.AsyncClient, base: str, snapshot: Path | None) -> None:
    params = {"snapshot": str(snapshot)} if snapshot else {}
    response = await http.get(f"{base}/bench/memory", params=params)
    response.raise_for_status()


async def _measure(
    port: int, pid: int, redis_pid: int, connections: int, workdir: Path | None
) -> dict:
    # A traced daphne handshakes ~10x slower: fewer at once stay inside its
    # 30 s handshake timeout.
    at_once = 100 if workdir is None else 20
    base, url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    # A traced daphne takes a minute or more to import Django and Twisted.
    for _ in range(10):
        try:
            await wait_ready(base)
            break
        except RuntimeError:
            continue
    else:
        raise RuntimeError("daphne did not start")
    async with httpx.AsyncClient(timeout=120) as http:
        warm = await _open_many(url, "warm-", WARM_UP, at_once)
        await asyncio.gather(*(ws.close() for ws in warm))
        await asyncio.sleep(2)  # the server finishes its disconnects
        await _collect(http, base, workdir and workdir / "before.snap")
        before = {"daphne": rss_kb(pid), "redis": rss_kb(redis_pid)}
        started = time.monotonic()
        sockets = await _open_many(url, "idle-", connections, at_once)
        opened_s = time.monotonic() - started
        await asyncio.sleep(3)
        await _collect(http, base, workdir and workdir / "after.snap")
        after = {"daphne": rss_kb(pid), "redis": rss_kb(redis_pid)}
        closed = sum(ws.close_code is not None for ws in sockets)
        if closed:
            raise RuntimeError(f"{closed} of {connections} connections closed")
        await asyncio.gather(*(ws.close() for ws in sockets))
    return {name: (after[name] - before[name]) / connections for name in before} | {
        "opened_s": opened_s,
        "daphne_before_mb": before["daphne"] / 1024,
    }


def _rss_run(connections: int) -> dict:
    with one_daphne(application=APPLICATION, **SERVER_ENV) as server:
        return _run(server, connections, None)


def _run(server: OneDaphne, connections: int, workdir: Path | None) -> dict:
    try:
        return asyncio.run(
            _measure(server.port, server.pid, server.redis_pid, connections, workdir)
        )
    except Exception:
        print(server.log_text()[-3000:])
        raise


def _traced_run(connections: int, frames: int) -> tuple[dict, list]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with one_daphne(
            application=APPLICATION, PYTHONTRACEMALLOC=str(frames), **SERVER_ENV
        ) as server:
            rss = _run(server, connections, workdir)
        before = tracemalloc.Snapshot.load(str(workdir / "before.snap"))
        after = tracemalloc.Snapshot.load(str(workdir / "after.snap"))
        return rss, snapshot_growth(before, after)


def _top(grown: list, owner: str, connections: int, count: int) -> list[str]:
    """The biggest allocation sites of one owner, by the owner's own frame."""
    sites: Counter[str] = Counter()
    for filenames, size, traceback in grown:
        if owner_of(filenames) != owner:
            continue
        frames = list(traceback)[::-1]
        innermost = frames[0]
        mine = next((f for f in frames if owner_of([f.filename]) == owner), innermost)
        where = f"{_short(mine.filename)}:{mine.lineno}"
        if mine is not innermost:
            where += f" via {_short(innermost.filename)}:{innermost.lineno}"
        sites[where] += size
    return [
        f"      {size / connections / 1024:6.2f} KB  {where}"
        for where, size in sites.most_common(count)
    ]


def _short(filename: str) -> str:
    if filename.startswith(f"{REPO}/"):
        return filename[len(str(REPO)) + 1 :]
    for marker in ("site-packages/", "python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return "/".join(Path(filename).parts[-3:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--top", type=int, default=6, help="sites listed per owner")
    args = parser.parse_args(argv)
    n = args.connections

    rss = _rss_run(n)
    print(
        f"RSS, daphne untraced, {n} idle connections after a full collection"
        f" (opened in {rss['opened_s']:.1f} s, {rss['daphne_before_mb']:.1f} MB"
        f" before): {rss['daphne']:.1f} KB per connection; redis-server"
        f" {rss['redis']:.1f} KB per connection",
        flush=True,
    )
    traced_rss, grown = _traced_run(n, args.frames)
    owners = breakdown((filenames, size) for filenames, size, _ in grown)
    traced = sum(owners.values())
    print(
        f"\ntracemalloc ({args.frames} frames), the same {n} connections:"
        f" {traced / n / 1024:.1f} KB per connection traced"
        f" (RSS of the traced daphne {traced_rss['daphne']:.1f} KB per connection,"
        " tracemalloc's own tables included)"
    )
    for owner, size in owners.items():
        share = size / traced if traced else 0
        print(f"  {owner:24} {size / n / 1024:6.2f} KB  {share:5.1%}")
        for line in _top(grown, owner, n, args.top):
            print(line)
    print(
        f"  {'untraced (RSS - traced)':24} {rss['daphne'] - traced / n / 1024:6.2f} KB"
        "  (C allocations, allocator free space)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
