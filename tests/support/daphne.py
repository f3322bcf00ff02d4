"""Real daphne processes for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bridge_project.embedded_redis import free_port, stop_process
from bridge_project.serve import daphne_command
from tests.support.logs import assert_no_crash

REPO = Path(__file__).resolve().parents[2]


def server_env(redis_url: str, database_url: str, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BRIDGE_", "DJANGO_")) and key not in ("DATABASE_URL",)
    }
    env.update(
        DJANGO_SETTINGS_MODULE="bridge_project.settings",
        DEBUG="1",
        BRIDGE_AUTH_MODE="open",
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
        # The suite connects as the same users from one address many times a
        # minute; tests of these limits pass lower values in `overrides`.
        BRIDGE_HANDSHAKES_PER_MINUTE_PER_USER="100000",
        BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS="100000",
    )
    env.update(overrides)
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
    )


class DaphneProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> DaphneProcess:
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> DaphneProcess:
        """Start the process without waiting; `wait_ready()` waits for /health."""
        max_frame = int(self.env.get("BRIDGE_MAX_FRAME_BYTES", "65536"))
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            daphne_command(
                "127.0.0.1",
                self.port,
                max_frame,
                access_log=self.env.get("BRIDGE_LOG_FORMAT") != "json",
            ),
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = 30.0) -> DaphneProcess:
        assert self.process is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"daphne exited: {self.log_path.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.http}/health", timeout=1).status_code in (
                    200,
                    503,
                ):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"daphne did not answer: {self.log_path.read_text()[-2000:]}"
        )

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        stop_process(self.process, kill=kill)
        self.process = None
        self._log.close()

    def log(self, since: int = 0) -> str:
        """The log so far; `since` skips what an earlier `log_size()` returned."""
        with open(self.log_path, "rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size


def migrated_database(redis_url: str, path: Path) -> Path:
    """Create and migrate a SQLite file at `path`, to copy with `running_daphnes`."""
    migrate(server_env(redis_url, f"sqlite:///{path}"))
    return path


@contextmanager
def running_daphnes(
    redis_url: str,
    workdir: Path,
    count: int,
    *,
    database: Path | None = None,
    **overrides: str,
) -> Iterator[list[DaphneProcess]]:
    """`count` daphne processes sharing Redis and one SQLite file in `workdir`
    (a copy of the migrated `database`, else migrated here), started in
    parallel; stopped on exit."""
    target = workdir / "bridge.sqlite3"
    env = server_env(redis_url, f"sqlite:///{target}", **overrides)
    if database is None:
        migrate(env)
    else:
        shutil.copyfile(database, target)
    processes = [DaphneProcess(env, workdir / f"daphne-{n}.log") for n in range(count)]
    try:
        for process in processes:
            process.spawn()
        for process in processes:
            process.wait_ready()
        yield processes
    finally:
        for process in processes:
            process.stop()


@contextmanager
def crash_free_daphnes(
    redis_url: str, workdir: Path, count: int, **kwargs
) -> Iterator[list[DaphneProcess]]:
    """running_daphnes; afterwards, no crash in any of their logs."""
    with running_daphnes(redis_url, workdir, count, **kwargs) as processes:
        yield processes
        for process in processes:
            assert_no_crash(process.log())
