"""`make run`: migrate, start an embedded Redis when REDIS_URL is unset, run daphne.

python -m bridge_project.serve [--port 8000] [--bind 127.0.0.1]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from bridge_project.daphne_compat import websocket_max_message_size
from bridge_project.embedded_redis import EmbeddedRedis


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1"))
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridge_project.settings")
    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis().start()
        os.environ["REDIS_URL"] = redis.url
        print(f"embedded redis-server at {redis.url} (set REDIS_URL to use your own)")
    try:
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], check=True)
        subprocess.run([*manage, "collectstatic", "--noinput", "-v", "0"], check=True)
        return _run_daphne(args.bind, args.port)
    finally:
        if redis is not None:
            redis.stop()


def daphne_command(
    bind: str,
    port: int,
    max_frame_bytes: int,
    *,
    access_log: bool = True,
    application: str = "bridge_project.asgi:application",
) -> list[str]:
    """The daphne command line Bridge runs with (tests and bench use it too).

    access_log=False (for BRIDGE_LOG_FORMAT=json) silences daphne's plain-text
    access lines; Bridge's own `bridge.events` lines say the same in JSON.
    `application` is the ASGI application daphne serves (a bench may swap it)."""
    ceiling = websocket_max_message_size(max_frame_bytes)
    quiet = [] if access_log else ["--access-log", os.devnull]
    return [
        # daphne on uvloop (bridge_project/daphne_uvloop.py).
        sys.executable, "-m", "bridge_project.daphne_uvloop",
        "-b", bind, "-p", str(port),
        "--websocket-max-message-size", str(ceiling),
        # daphne drops handshakes still pending after 5 s; a burst of hundreds of
        # connects on a busy 2-core machine takes longer than that to accept.
        "--websocket_connect_timeout", "30",
        *quiet,
        application,
    ]  # fmt: skip


def _run_daphne(bind: str, port: int) -> int:
    import django
    from django.conf import settings

    django.setup()
    command = daphne_command(
        bind,
        port,
        settings.BRIDGE_MAX_FRAME_BYTES,
        access_log=settings.BRIDGE_LOG_FORMAT != "json",
    )
    print(
        f"Bridge on http://{bind}:{port}  (WebSocket ws://{bind}:{port}/ws?user_id=...)"
    )
    daphne = subprocess.Popen(command)
    # `kill` (SIGTERM) must stop daphne and the embedded Redis too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return daphne.wait()
    except KeyboardInterrupt:
        # daphne drains (bridge_project/daphne_shutdown.py) while Redis is still
        # up, and exits within the grace; Ctrl-C has sent it SIGINT already. A
        # second signal must not stop the embedded Redis under the drain.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        daphne.send_signal(signal.SIGTERM)
        try:
            return daphne.wait(timeout=settings.BRIDGE_SHUTDOWN_GRACE + 5)
        except subprocess.TimeoutExpired:
            daphne.kill()
            return daphne.wait()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
