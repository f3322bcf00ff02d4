"""The server under test, kept apart from the scenarios.

A scenario only needs what `Target` offers: base URLs to spread clients and
pushes over, the pids whose RSS/CPU count as "server", other pids worth
watching (redis-server), whether the server is still alive, and its log. A
second target, the in-memory reference bridge (`ReferenceTarget`,
bench/reference.py), is another subclass; `bench.run` runs every scenario
against every target it is given and the report prints ratios between them.

Both targets run under the same ASGI server, daphne (Bridge's documented
default) or uvicorn (`--server uvicorn`, the optional `bench` extra), started
by `server_command` with equivalent settings.

Bridge runs in one of two configurations (`BRIDGE_CONFIGS`): "dev" (what `make
run` does: DEBUG=1, BRIDGE_AUTH_MODE=open, user ids trusted, no API key) or
"production" (how it is deployed: DEBUG=0, a SECRET_KEY, BRIDGE_AUTH_MODE=token,
HTTPS posture on behind a TLS-terminating proxy that sets X-Forwarded-Proto;
pushes carry an API key, every WebSocket a signed token). A target tells the
scenarios how to authenticate through `http_headers` and `ws_query`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

import httpx
import psutil

from bench.machine import REPO

SERVER_ENV = {
    "DJANGO_SETTINGS_MODULE": "bridge_project.settings",
    "DEBUG": "1",
    "BRIDGE_AUTH_MODE": "open",
    "BRIDGE_HEARTBEAT_INTERVAL": "30",
    # The benchmark measures capacity; one client address would hit the
    # per-address throttle (6000/minute by default) within seconds.
    "BRIDGE_THROTTLE_ADDRESS_RATE": "none",
    # Likewise the handshake limit per address (0: off) when it opens thousands
    # of sockets, and the one per user when it reconnects its users.
    "BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS": "0",
    "BRIDGE_HANDSHAKES_PER_MINUTE_PER_USER": "0",
    "PYTHONUNBUFFERED": "1",
}
# As bridge_project.serve.daphne_command runs it.
MAX_MESSAGE_SIZE = "1048576"
# What `python -m bridge_project.daphne_uvloop` does, inline, so that an
# --app-dir checkout without that module runs on the same event loop.
DAPHNE_ON_UVLOOP = (
    "import asyncio, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "from daphne.cli import CommandLineInterface; CommandLineInterface.entrypoint()"
)

# Bridge as deployed (docs/deployment.md), on top of SERVER_ENV: DEBUG off,
# token mode, the HTTPS posture on (BRIDGE_HTTPS defaults to on with DEBUG
# off) behind a proxy that terminates TLS and says so in X-Forwarded-Proto
# (PROXY_HEADERS, which the bench's HTTP client sends like that proxy would).
# The bench's capacity settings (no per-address throttles) stay.
PRODUCTION_ENV = {
    "DEBUG": "0",
    "BRIDGE_AUTH_MODE": "token",
    "BRIDGE_HTTPS": "1",
    "BRIDGE_TRUST_X_FORWARDED_PROTO": "1",
}
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
#: Bridge's configurations (`--bridge-config`).
BRIDGE_CONFIGS = ("production", "dev")
# Tokens for the bench's users, minted in one process with the server's own
# code and SECRET_KEY (what `manage.py issue_token` does, for many users): user
# ids on stdin, one a line; a JSON object user id -> token on stdout.
_MINT_TOKENS = (
    "import json, sys, django; django.setup()\n"
    "from accounts.tokens import token_issue\n"
    "users = sys.stdin.read().split()\n"
    "print(json.dumps({u: token_issue(user_id=u, ttl_seconds=86400).token"
    " for u in users}))\n"
)

#: ASGI servers the bench can start its targets under (`--server`).
SERVERS = ("daphne", "uvicorn", "granian")
#: uvicorn's WebSocket implementations (`--uvicorn-ws`); the first is the default.
UVICORN_WS = ("websockets", "websockets-sansio", "wsproto")
_UVICORN_NEEDS = {
    "uvicorn": "uvicorn",
    "uvloop": "uvloop",
    "httptools": "httptools",
    "websockets": "websockets",
    "websockets-sansio": "websockets",
    "wsproto": "wsproto",
}


class TargetError(RuntimeError):
    pass


def missing_server_packages(server: str, uvicorn_ws: str = UVICORN_WS[0]) -> list[str]:
    """Modules `server` needs that this interpreter cannot import ([] if none).

    The servers run with this interpreter (sys.executable), so what it can
    import is what they can."""
    if server != "uvicorn":
        return []
    wanted = ["uvicorn", "uvloop", "httptools", _UVICORN_NEEDS[uvicorn_ws]]
    return [name for name in wanted if importlib.util.find_spec(name) is None]


class Target(ABC):
    """One server under test: started, measured, stopped."""

    #: Short label used in tables and JSON ("bridge", "reference", ...).
    name: str = "target"

    @property
    @abstractmethod
    def http_urls(self) -> list[str]:
        """Base URLs (http://host:port), one per server process."""

    @property
    def ws_urls(self) -> list[str]:
        return [
            "ws" + url.removeprefix("http") if url.startswith("http") else url
            for url in self.http_urls
        ]

    def start(self) -> None:  # noqa: B027 - optional hook
        """Bring the server up; returns when it answers."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Tear down whatever start() brought up."""

    def server_pids(self) -> list[int]:
        """Processes whose RSS and CPU are reported as the server's."""
        return []

    @property
    def http_headers(self) -> dict[str, str]:
        """Headers every push request carries (an API key, proxy headers)."""
        return {}

    def ws_query(self, users: list[str]) -> dict[str, str]:
        """The `/ws` query string that connects as each user: `user_id=U`
        here (open mode, the reference); a token in token mode."""
        return {user: f"user_id={user}" for user in users}

    def aux_pids(self) -> dict[str, list[int]]:
        """Other processes worth measuring, by label (e.g. {"redis": [pid]})."""
        return {}

    def dead(self) -> list[str]:
        """Descriptions of server processes that have exited."""
        return []

    def log_mark(self) -> object:
        """An opaque position in the server log; see log_since()."""
        return None

    def log_since(self, mark: object) -> str:
        return ""

    def describe(self) -> dict:
        return {"name": self.name, "http_urls": self.http_urls}

    def __enter__(self) -> Target:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ServerProcessesTarget(Target):
    """A target whose server processes this bench started: `_daphnes` holds
    (port, process, log path) for each daphne or uvicorn."""

    server = "daphne"
    _daphnes: list[tuple[int, subprocess.Popen, Path]]

    def _first_port(self) -> int:
        """The port of the first server process this target started (0: none)."""
        return self._daphnes[0][0] if self._daphnes else 0

    def _stop_servers(self) -> None:
        from bridge_project.embedded_redis import stop_process

        for _port, process, _log in self._daphnes:
            if process.poll() is None:
                stop_process(process)
        self._daphnes = []

    @property
    def http_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port, _p, _l in self._daphnes]

    def server_pids(self) -> list[int]:
        """The server processes, and their workers (granian runs the
        application in a child process; daphne and uvicorn have none)."""
        pids = []
        for _port, process, _log in self._daphnes:
            pids.append(process.pid)
            try:
                children = psutil.Process(process.pid).children(recursive=True)
            except psutil.Error:
                children = []
            pids.extend(child.pid for child in children)
        return pids

    def dead(self) -> list[str]:
        return [
            f"{self.server} :{port} exited with {process.returncode}"
            for port, process, _log in self._daphnes
            if process.poll() is not None
        ]

    def log_mark(self) -> list[int]:
        return [log.stat().st_size for _port, _p, log in self._daphnes]

    def log_since(self, mark: object) -> str:
        return logs_since(self._daphnes, mark)


class BridgeTarget(ServerProcessesTarget):
    """Bridge as `make run` would serve it: embedded Redis, fresh SQLite, N daphnes
    (or N uvicorns with server="uvicorn", one worker each).

    Every server process shares the one Redis and the one database file.
    """

    name = "bridge"

    def __init__(
        self,
        processes: int = 1,
        extra_env: dict[str, str] | None = None,
        keep_dir: bool = False,
        start_timeout: float = 60.0,
        app_dir: Path = REPO,
        server: str = "daphne",
        uvicorn_ws: str = UVICORN_WS[0],
        config: str = "dev",
    ) -> None:
        if config not in BRIDGE_CONFIGS:
            raise ValueError(f"unknown Bridge config {config!r}")
        self.processes = processes
        self.config = config
        self.api_key: str | None = None
        # One per target: the servers and the token minting must share it.
        self._secret_key = secrets.token_urlsafe(50)
        self.server = server
        self.uvicorn_ws = uvicorn_ws
        self.app_dir = Path(app_dir)
        self.extra_env = extra_env or {}
        self.keep_dir = keep_dir
        self.start_timeout = start_timeout
        self.workdir: Path | None = None
        self.redis = None
        self._daphnes: list[tuple[int, subprocess.Popen, Path]] = []
        self._logs: list = []

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        from bridge_project.embedded_redis import EmbeddedRedis, free_port

        self.workdir = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
        try:
            self.redis = EmbeddedRedis().start()
            env = self._env()
            self._migrate(env)
            if self.config == "production":
                self.api_key = self._create_api_key(env)
            for index in range(self.processes):
                port = free_port()
                log_path = self.workdir / f"{self.server}-{index}.log"
                log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
                self._logs.append(log)
                process = subprocess.Popen(
                    server_command(
                        self.server,
                        port,
                        "bridge_project.asgi:application",
                        uvicorn_ws=self.uvicorn_ws,
                    ),
                    cwd=self.app_dir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                self._daphnes.append((port, process, log_path))
            for port, process, log_path in self._daphnes:
                wait_healthy(port, process, log_path, self.start_timeout, self.server)
        except BaseException:
            self.stop()
            raise

    def _env(self) -> dict[str, str]:
        assert self.workdir is not None and self.redis is not None
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
        }
        env.update(SERVER_ENV)
        if self.config == "production":
            env.update(PRODUCTION_ENV)
            env["SECRET_KEY"] = self._secret_key
        env["REDIS_URL"] = self.redis.url
        env["DATABASE_URL"] = f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        env.update(self.extra_env)
        return env

    def _migrate(self, env: dict[str, str]) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=self.app_dir,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise TargetError(f"migrate failed:\n{done.stdout}{done.stderr}")

    def _create_api_key(self, env: dict[str, str]) -> str:
        """A service key that may push (`manage.py create_api_key`; the key is
        the last line it prints)."""
        done = subprocess.run(
            [
                *(sys.executable, "manage.py", "create_api_key"),
                *("--service", "bench", "--perm", "push", "--name", "bench"),
            ],
            cwd=self.app_dir,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise TargetError(f"create_api_key failed:\n{done.stdout}{done.stderr}")
        return done.stdout.strip().splitlines()[-1].strip()

    @property
    def http_headers(self) -> dict[str, str]:
        if self.config != "production":
            return {}
        return {**PROXY_HEADERS, "Authorization": f"Bearer {self.api_key}"}

    def ws_query(self, users: list[str]) -> dict[str, str]:
        if self.config != "production":
            return super().ws_query(users)
        done = subprocess.run(
            [sys.executable, "-c", _MINT_TOKENS],
            cwd=self.app_dir,
            env=self._env(),
            input="\n".join(users),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise TargetError(f"minting tokens failed:\n{done.stderr[-2000:]}")
        tokens = json.loads(done.stdout.strip().splitlines()[-1])
        return {user: f"token={tokens[user]}" for user in users}

    def stop(self) -> None:
        self._stop_servers()
        for log in self._logs:
            log.close()
        self._logs = []
        if self.redis is not None:
            self.redis.stop()
            # EmbeddedRedis leaves its (empty) working directory behind.
            redis_dir = getattr(self.redis, "_dir", None)
            if redis_dir and not self.keep_dir:
                shutil.rmtree(redis_dir, ignore_errors=True)
            self.redis = None
        if self.workdir is not None and not self.keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- what scenarios read ---------------------------------------------------

    def aux_pids(self) -> dict[str, list[int]]:
        if self.redis is None or self.redis.process is None:
            return {}
        return {"redis": [self.redis.process.pid]}

    def describe(self) -> dict:
        return {
            "name": self.name,
            "processes": self.processes,
            "server": self.server,
            "command": server_command(
                self.server,
                self._first_port(),
                "bridge_project.asgi:application",
                self.uvicorn_ws,
            )[1:],
            "app_dir": str(self.app_dir),
            "config": self.config,
            "http_urls": self.http_urls,
            "workdir": str(self.workdir) if self.keep_dir else None,
            "extra_env": self.extra_env,
        }


class ExternalTarget(Target):
    """A server someone else started (--target URL). Pids are optional."""

    name = "external"

    def __init__(self, urls: list[str], pids: list[int] | None = None) -> None:
        self._urls = [url.rstrip("/") for url in urls]
        self._pids = pids or []

    @property
    def http_urls(self) -> list[str]:
        return self._urls

    def start(self) -> None:
        for url in self._urls:
            try:
                reply = httpx.get(f"{url}/health", timeout=5)
            except httpx.HTTPError as exc:
                raise TargetError(f"{url}/health: {type(exc).__name__}") from exc
            if reply.status_code != 200:
                raise TargetError(f"{url}/health answered {reply.status_code}")

    def server_pids(self) -> list[int]:
        return list(self._pids)

    def dead(self) -> list[str]:
        return [
            f"pid {pid} is gone"
            for pid in self._pids
            if not Path(f"/proc/{pid}").exists()
        ]

    def describe(self) -> dict:
        return {"name": self.name, "http_urls": self.http_urls, "pids": self._pids}


class ReferenceTarget(ServerProcessesTarget):
    """The in-memory reference bridge (bench/reference.py) under one daphne
    (or one uvicorn with server="uvicorn").

    Same server, same flags as Bridge's, no Redis, no database: the floor
    Bridge's figures are divided by. Always one process (its state is a dict in
    that process)."""

    name = "reference"

    def __init__(
        self,
        keep_dir: bool = False,
        start_timeout: float = 30.0,
        server: str = "daphne",
        uvicorn_ws: str = UVICORN_WS[0],
        name: str | None = None,
    ) -> None:
        self.server = server
        self.uvicorn_ws = uvicorn_ws
        self.keep_dir = keep_dir
        self.start_timeout = start_timeout
        if name is not None:
            self.name = name  # e.g. "ref-uvicorn", "ref-daphne" (the headline run)
        self.workdir: Path | None = None
        self._daphnes: list[tuple[int, subprocess.Popen, Path]] = []
        self._log = None

    def start(self) -> None:
        from bridge_project.embedded_redis import free_port

        self.workdir = Path(tempfile.mkdtemp(prefix="bridge-bench-ref-"))
        try:
            port = free_port()
            log_path = self.workdir / f"{self.server}-reference.log"
            self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
            env = {
                key: value
                for key, value in os.environ.items()
                if key != "DJANGO_SETTINGS_MODULE"
            }
            env["PYTHONUNBUFFERED"] = "1"
            process = subprocess.Popen(
                server_command(
                    self.server,
                    port,
                    "bench.reference:application",
                    uvicorn_ws=self.uvicorn_ws,
                ),
                cwd=REPO,
                env=env,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            self._daphnes.append((port, process, log_path))
            wait_healthy(port, process, log_path, self.start_timeout, self.server)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._stop_servers()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.workdir is not None and not self.keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "processes": 1,
            "server": self.server,
            "command": server_command(
                self.server,
                self._first_port(),
                "bench.reference:application",
                self.uvicorn_ws,
            )[1:],
            "app": "bench.reference:application",
            "http_urls": self.http_urls,
            "workdir": str(self.workdir) if self.keep_dir else None,
        }


# --- server processes, shared by the targets that start them ----------------------


def server_command(
    server: str, port: int, application: str, uvicorn_ws: str = UVICORN_WS[0]
) -> list[str]:
    """The command line of one server process, for `server` in SERVERS."""
    if server == "daphne":
        return daphne_command(port, application)
    if server == "uvicorn":
        return uvicorn_command(port, application, ws=uvicorn_ws)
    if server == "granian":
        return granian_command(port, application)
    raise ValueError(f"unknown server {server!r} (known: {', '.join(SERVERS)})")


def daphne_command(port: int, application: str) -> list[str]:
    """daphne as the bench serves every target (Bridge and the reference alike):
    on uvloop, as bridge_project.serve.daphne_command runs it."""
    command = [sys.executable, "-c", DAPHNE_ON_UVLOOP, "-b", "127.0.0.1"]
    command += ["-p", str(port)]
    command += ["--websocket-max-message-size", MAX_MESSAGE_SIZE]
    command += ["--websocket_connect_timeout", "30"]
    return [*command, application]


def uvicorn_command(port: int, application: str, ws: str = UVICORN_WS[0]) -> list[str]:
    """uvicorn with what daphne_command gives daphne, as far as uvicorn has it.

    Same bind and port, same incoming-message ceiling, access log on (daphne
    logs every request to stdout by default, and the bench keeps that), no
    permessage-deflate (daphne does not negotiate it), no proxy headers (off
    in daphne), daphne's keepalive ping interval and timeout (20 s, 30 s),
    idle keep-alive HTTP connections kept well beyond a bench run's pauses
    (daphne does not close them), no lifespan (Django's ASGI handler has none;
    daphne sends none). One process, no supervisor (`--workers 1`, so the pid
    is the server's own and WEB_CONCURRENCY cannot fork workers). uvicorn
    has no handshake timeout to match daphne's `--websocket_connect_timeout`."""
    return [
        sys.executable, "-m", "uvicorn",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--ws", ws,
        "--ws-max-size", MAX_MESSAGE_SIZE,
        "--ws-per-message-deflate", "false",
        "--ws-ping-interval", "20", "--ws-ping-timeout", "30",
        "--timeout-keep-alive", "60",
        "--timeout-graceful-shutdown", "5",
        "--no-proxy-headers",
        "--lifespan", "off",
        "--no-use-colors",
        application,
    ]  # fmt: skip


def granian_command(port: int, application: str) -> list[str]:
    """granian (a Rust HTTP server with Python ASGI workers; `pip install
    granian`), as close to daphne_command as it goes: one worker process,
    uvloop, access log on, WebSockets on, no lifespan (the ASGI interface
    sends lifespan events only to applications that take them)."""
    return [
        sys.executable, "-m", "granian",
        "--interface", "asgi",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
        "--loop", "uvloop",
        "--ws",
        "--access-log",
        application,
    ]  # fmt: skip


def wait_healthy(
    port: int,
    process: subprocess.Popen,
    log: Path,
    timeout: float,
    server: str = "daphne",
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TargetError(
                f"{server} on :{port} exited with {process.returncode}:\n"
                + _tail(log.read_text(errors="replace"), 40)
            )
        try:
            reply = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            if reply.status_code == 200:
                return
            last = f"{reply.status_code} {reply.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise TargetError(f"{server} on :{port} not healthy ({last})")


def logs_since(daphnes: list[tuple[int, subprocess.Popen, Path]], mark: object) -> str:
    """What the server logs got since log_mark() (a list of file sizes)."""
    assert isinstance(mark, list)
    parts = []
    for (port, _p, log), offset in zip(daphnes, mark, strict=True):
        with open(log, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
        if text.strip():
            prefix = f"[:{port}] " if len(daphnes) > 1 else ""
            parts.extend(prefix + line for line in text.splitlines())
    return "\n".join(parts)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])
