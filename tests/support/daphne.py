"""Real daphne processes for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bridge_project.embedded_redis import free_port

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
        max_frame = self.env.get("BRIDGE_MAX_FRAME_BYTES", "65536")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "daphne",
                "-b", "127.0.0.1", "-p", str(self.port),
                "--websocket-max-message-size", max_frame,
                "bridge_project.asgi:application",
            ],
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.http}/health", timeout=1).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daphne did not answer: {self.log_path.read_text()[-2000:]}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
