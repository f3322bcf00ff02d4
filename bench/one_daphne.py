"""One daphne (open mode) on a fresh redis-server and a migrated SQLite file,
for the benchmarks that measure a single process (bench.slow_reader_rss,
bench.stream_cost, bench.connection_memory)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bridge_project.embedded_redis import EmbeddedRedis, free_port
from bridge_project.serve import daphne_command

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class OneDaphne:
    port: int
    pid: int
    redis_pid: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def server_env(redis_url: str, database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(
        DEBUG="1",
        BRIDGE_AUTH_MODE="open",
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite:///{database}",
        DJANGO_SETTINGS_MODULE="bridge_project.settings",
    )
    return env


@contextlib.contextmanager
def one_daphne(
    *, application: str = "bridge_project.asgi:application", **settings: str
) -> Iterator[OneDaphne]:
    """Start them (`settings` are extra environment variables; `application` is
    what daphne serves), yield where daphne listens, stop everything on exit."""
    with tempfile.TemporaryDirectory() as workdir:
        redis_server = EmbeddedRedis().start()
        database = Path(workdir) / "bridge.sqlite3"
        env = {**server_env(redis_server.url, database), **settings}
        log_path = Path(workdir) / "daphne.log"
        try:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v", "0"],
                cwd=REPO,
                # A traced daphne (bench.connection_memory) needs no traced migrate.
                env={k: v for k, v in env.items() if k != "PYTHONTRACEMALLOC"},
                check=True,
            )
            port = free_port()
            with open(log_path, "wb") as log:
                daphne = subprocess.Popen(
                    daphne_command(
                        "127.0.0.1",
                        port,
                        65536,
                        access_log=False,
                        application=application,
                    ),
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    yield OneDaphne(
                        port, daphne.pid, redis_server.process.pid, log_path
                    )
                finally:
                    daphne.terminate()
                    try:
                        daphne.wait(10)
                    except subprocess.TimeoutExpired:
                        # A traced daphne drains thousands of sockets slowly.
                        daphne.kill()
                        daphne.wait()
        finally:
            redis_server.stop()


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient(timeout=1) as http:
        for _ in range(300):
            try:
                if (await http.get(f"{base}/health")).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("daphne did not start")
