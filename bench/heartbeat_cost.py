"""What the heartbeat costs at rest: N idle connections on one daphne process.

    python -m bench.heartbeat_cost          # 5,000 connections; 3600, 30 and 5 s
    python -m bench.heartbeat_cost --intervals 30,5 --connections 1000 --window 30
    python -m bench.heartbeat_cost --intervals 5 --strategies per-socket

Two heartbeat strategies (`--strategies`, both by default, each interval run
under each in turn): `timer`, the one timer per process that Bridge ships
(`messaging.realtime.heartbeat`), and `per-socket`, one asyncio task per connection
(`bench.heartbeat_per_socket`, a benchmark-only ASGI entry point).

For each BRIDGE_HEARTBEAT_INTERVAL and strategy it starts a fresh redis-server,
a migrated SQLite file and one daphne (open mode), opens the connections (one
user each), lets them settle, then measures over `--window` seconds of idleness:

- daphne's CPU, as % of one core: utime + stime from /proc/<pid>/stat;
- Redis commands per second: the delta of INFO stats total_commands_processed
  (and the last instantaneous_ops_per_sec), and redis-server's own CPU;
- pings the clients received, to show how many beats fell in the window and
  the real period between them (the interval plus the time one beat takes);
- the fewest users presence counted as online at any moment of the window
  (sampled twice a second): all N stay connected, so a lower figure means
  registry entries expired before the heartbeat rewrote them.

The clients answer every `ping` with `pong`, as SPEC §2 asks of them, so the
cost includes reading those frames (`--silent` clients answer nothing; the
timeout is then raised so that they are not closed). An interval of 3600 s
has no beat in the window: it is the baseline of idle connections without a
heartbeat. The clients run in this process, on the same machine: run it on an
otherwise idle machine, and compare figures from one machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import redis
import redis.asyncio
import websockets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge_project.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from bridge_project.serve import daphne_command  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
CONNECT_CONCURRENCY = 200
PRESENCE_ONLINE_KEY = "bridge:online"  # messaging.presence.ONLINE_KEY
# The ASGI application daphne serves for each heartbeat strategy.
STRATEGIES = {
    "timer": "bridge_project.asgi:application",
    "per-socket": "bench.heartbeat_per_socket:application",
}


@dataclass
class Result:
    strategy: str
    interval_s: float
    connections: int
    window_s: float
    daphne_cpu_pct: float
    redis_cpu_pct: float
    redis_ops_per_s: float
    redis_instantaneous_ops: int
    pings_received: int
    pings_per_connection: float
    # Time between two pings to one connection (mean, max over the window):
    # the interval plus the time one beat takes.
    ping_gap_mean_s: float | None
    ping_gap_max_s: float | None
    # Fewest connected users presence counted at any sample in the window
    # (every connection is open throughout, so anything below `connections`
    # means entries expired before the heartbeat rewrote them).
    presence_min_online: int
    client_cpu_pct: float
    daphne_rss_mb: float
    connect_s: float


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces; fields resume after the ")".
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_nofile_limit() -> tuple[int, int]:
    """As far as the hard limit allows; daphne and redis-server inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Server:
    """redis-server + migrated SQLite + one daphne, in a temporary directory."""

    def __init__(
        self, interval: float, timeout: float, workdir: Path, *, strategy: str
    ) -> None:
        self.workdir = workdir
        self.redis = EmbeddedRedis().start()
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")},
            "DJANGO_SETTINGS_MODULE": "bridge_project.settings",
            "DEBUG": "1",
            "BRIDGE_AUTH_MODE": "open",
            "REDIS_URL": self.redis.url,
            "DATABASE_URL": f"sqlite:///{workdir / 'bridge.sqlite3'}",
            "BRIDGE_HEARTBEAT_INTERVAL": str(interval),
            "BRIDGE_HEARTBEAT_TIMEOUT": str(timeout),
            "BRIDGE_MAX_CONNECTIONS_PER_USER": "5",
            # Thousands of sockets from one address: no handshake limit per address.
            "BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=REPO,
            env=self.env,
            check=True,
        )
        self.log = open(workdir / "daphne.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            daphne_command(
                "127.0.0.1", self.port, 65536, application=STRATEGIES[strategy]
            ),
            cwd=REPO,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.workdir / "daphne.log").read_text()[-2000:])
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1)
                if health.status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("daphne did not become healthy")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.redis.stop()


class Clients:
    """N WebSocket connections, one user each, answering pings (or silent)."""

    def __init__(self, url: str, count: int, *, answer: bool) -> None:
        self.url = url
        self.count = count
        self.answer = answer
        self.pings = 0
        self.closed = 0
        # (arrival, seconds since the previous ping on the same socket)
        self.gaps: list[tuple[float, float]] = []
        self.sockets: list[websockets.ClientConnection] = []
        self.readers: list[asyncio.Task] = []

    async def open(self) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        tag = os.urandom(4).hex()

        async def one(index: int) -> None:
            async with gate:
                ws = await websockets.connect(
                    f"{self.url}/ws?user_id=hb{tag}u{index}",
                    open_timeout=60,
                    compression=None,
                    ping_interval=None,
                )
                first = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert first["type"] == "connected", first
            self.sockets.append(ws)
            self.readers.append(asyncio.ensure_future(self._read(ws)))

        await asyncio.gather(*(one(n) for n in range(self.count)))

    def gaps_since(self, start: float) -> list[float]:
        return [gap for arrival, gap in self.gaps if arrival >= start]

    async def _read(self, ws: websockets.ClientConnection) -> None:
        previous: float | None = None
        try:
            async for raw in ws:
                if '"ping"' in raw:
                    self.pings += 1
                    now = time.monotonic()
                    if previous is not None:
                        self.gaps.append((now, now - previous))
                    previous = now
                    if self.answer:
                        await ws.send('{"type":"pong"}')
        except websockets.ConnectionClosed:
            pass
        self.closed += 1

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(
            *(ws.close() for ws in self.sockets), return_exceptions=True
        )


async def presence_low_water(url: str, until: float) -> int:
    """Sample `bridge:online` (users with an unexpired entry) twice a second."""
    lowest: int | None = None
    client = redis.asyncio.Redis.from_url(url)
    try:
        while time.monotonic() < until:
            online = await client.zcount(PRESENCE_ONLINE_KEY, time.time(), "+inf")
            lowest = online if lowest is None else min(lowest, online)
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()
    return lowest or 0


def redis_stats(url: str) -> tuple[int, int]:
    with redis.Redis.from_url(url) as client:
        stats = client.info("stats")
    return stats["total_commands_processed"], stats["instantaneous_ops_per_sec"]


async def measure(
    interval: float,
    *,
    strategy: str,
    connections: int,
    window: float,
    settle: float,
    silent: bool,
) -> Result:
    timeout = max(60.0, 3 * interval) if not silent else 10 * max(interval, window)
    workdir = Path(tempfile.mkdtemp(prefix="bridge-hb-cost-"))
    server = Server(interval, timeout, workdir, strategy=strategy)
    clients = Clients(f"ws://127.0.0.1:{server.port}", connections, answer=not silent)
    try:
        started = time.monotonic()
        await clients.open()
        connect_s = time.monotonic() - started
        await asyncio.sleep(settle)

        redis_pid = server.redis.process.pid
        cpu0, rcpu0, own0 = (
            cpu_seconds(server.pid),
            cpu_seconds(redis_pid),
            own_cpu_seconds(),
        )
        ops0, _ = redis_stats(server.redis.url)
        pings0 = clients.pings
        t0 = time.monotonic()
        low_water = await presence_low_water(server.redis.url, t0 + window)
        elapsed = time.monotonic() - t0
        cpu1, rcpu1, own1 = (
            cpu_seconds(server.pid),
            cpu_seconds(redis_pid),
            own_cpu_seconds(),
        )
        ops1, instantaneous = redis_stats(server.redis.url)
        pings = clients.pings - pings0
        gaps = clients.gaps_since(t0)
        if clients.closed:
            raise RuntimeError(f"{clients.closed} connections were closed")
        return Result(
            strategy=strategy,
            interval_s=interval,
            connections=connections,
            window_s=round(elapsed, 1),
            daphne_cpu_pct=round(100 * (cpu1 - cpu0) / elapsed, 2),
            redis_cpu_pct=round(100 * (rcpu1 - rcpu0) / elapsed, 2),
            redis_ops_per_s=round((ops1 - ops0 - 2) / elapsed, 1),
            redis_instantaneous_ops=instantaneous,
            pings_received=pings,
            pings_per_connection=round(pings / connections, 2),
            ping_gap_mean_s=round(statistics.fmean(gaps), 2) if gaps else None,
            ping_gap_max_s=round(max(gaps), 2) if gaps else None,
            presence_min_online=low_water,
            client_cpu_pct=round(100 * (own1 - own0) / elapsed, 2),
            daphne_rss_mb=round(rss_mb(server.pid), 1),
            connect_s=round(connect_s, 1),
        )
    finally:
        await clients.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(results: list[Result]) -> None:
    header = (
        f"{'strategy':>10} {'interval':>8} {'conns':>6} {'window':>6} "
        f"{'daphne CPU':>10} "
        f"{'redis ops/s':>11} {'redis CPU':>9} {'pings/conn':>10} "
        f"{'ping gap mean/max':>17} {'min online':>10} {'client CPU':>10} "
        f"{'RSS':>8}"
    )
    print(header)
    for r in results:
        print(
            f"{r.strategy:>10} {r.interval_s:>7g}s {r.connections:>6} "
            f"{r.window_s:>5g}s "
            f"{r.daphne_cpu_pct:>9.2f}% {r.redis_ops_per_s:>11.1f} "
            f"{r.redis_cpu_pct:>8.2f}% {r.pings_per_connection:>10} "
            f"{_gaps(r.ping_gap_mean_s, r.ping_gap_max_s):>17} "
            f"{r.presence_min_online:>10} "
            f"{r.client_cpu_pct:>9.2f}% "
            f"{r.daphne_rss_mb:>5.0f} MB"
        )


def _gaps(mean: float | None, most: float | None) -> str:
    return "-" if mean is None or most is None else f"{mean:.2f}/{most:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument(
        "--intervals",
        default="3600,30,5",
        help="BRIDGE_HEARTBEAT_INTERVAL values, comma-separated (3600: no beat)",
    )
    parser.add_argument(
        "--strategies",
        default="timer,per-socket",
        help=f"heartbeat strategies, comma-separated, of: {', '.join(STRATEGIES)}",
    )
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds between connects and window"
    )
    parser.add_argument("--silent", action="store_true", help="clients never pong")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    strategies = [name.strip() for name in args.strategies.split(",") if name.strip()]
    unknown = [name for name in strategies if name not in STRATEGIES]
    if unknown or not strategies:
        parser.error(f"--strategies: unknown {unknown}; choose from {list(STRATEGIES)}")

    soft, _ = raise_nofile_limit()
    if soft < args.connections * 2 + 100:
        print(f"RLIMIT_NOFILE is {soft}: too low for {args.connections} connections")
        return 2
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
        f"RLIMIT_NOFILE {soft}",
        flush=True,
    )
    results = []
    failures = []
    # Strategies inside intervals: the runs compared are close in time.
    for interval in (float(v) for v in args.intervals.split(",")):
        for strategy in strategies:
            try:
                result = asyncio.run(
                    measure(
                        interval,
                        strategy=strategy,
                        connections=args.connections,
                        window=args.window,
                        settle=args.settle,
                        silent=args.silent,
                    )
                )
            except Exception as exc:
                # A strategy that cannot hold N connections at this interval is
                # a result too; the other runs still go ahead.
                failure = f"{strategy} at {interval:g}s FAILED: {exc!r}"[:300]
                print(failure, flush=True)
                failures.append(failure)
                continue
            print(json.dumps(asdict(result)), flush=True)
            results.append(result)
    print_table(results)
    for failure in failures:
        print(failure)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
