"""What a JWT handshake costs against a Bridge-token handshake (SPEC §10).

    python -m bench.jwt_handshake                      # 1,000 handshakes each
    python -m bench.jwt_handshake --handshakes 300 --verify-rounds 2000

Two measurements, each for a Bridge token (Django signing, HMAC-SHA256), an
HS256 JWT and an RS256 JWT (2048-bit key); ES256 and EdDSA are measured in
the first only:

1. verify: CPU time of accounts.credentials.user_token_claims per token, in
   this process, averaged over `--verify-rounds` calls (the path the
   handshake, `refresh` frames and /api/me/* take);
2. handshake: `--handshakes` WebSocket handshakes, one after another, against
   one daphne in token mode (a fresh redis-server and migrated SQLite file),
   each a new connection that reads `connected` and closes: latency (median
   and p95, client side) and daphne's CPU per handshake (utime + stime from
   /proc, over the whole run).

The clients run in this process, on the same machine: run it on an otherwise
idle machine and compare figures from one machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import websockets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import cpu_seconds, machine_info  # noqa: E402
from bridge_project.embedded_redis import EmbeddedRedis  # noqa: E402

KINDS = ("bridge", "HS256", "RS256", "ES256", "EdDSA")
HANDSHAKE_KINDS = ("bridge", "HS256", "RS256")
ROUNDS = 5


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()


def _tokens(secret_key: str) -> dict[str, Callable[[str], str]]:
    """A token maker per kind: user id -> token."""
    from django.test import override_settings

    from accounts.tokens import token_issue
    from tests.support import jwts

    def bridge(user: str) -> str:
        with override_settings(SECRET_KEY=secret_key, SECRET_KEY_FALLBACKS=[]):
            return token_issue(user_id=user).token

    return {
        "bridge": bridge,
        "HS256": lambda user: jwts.hs256(jwts.claims(user)),
        "RS256": lambda user: jwts.key_pair("RS256").sign(jwts.claims(user)),
        "ES256": lambda user: jwts.key_pair("ES256").sign(jwts.claims(user)),
        "EdDSA": lambda user: jwts.key_pair("EdDSA").sign(jwts.claims(user)),
    }


def measure_verify(rounds: int) -> dict[str, float]:
    """Microseconds of CPU per verification, per kind."""
    from django.conf import settings
    from django.test import override_settings

    from accounts.credentials import user_token_claims
    from tests.support import jwts

    makers = _tokens(settings.SECRET_KEY)
    found = {}
    with override_settings(
        BRIDGE_JWT_KEYS=tuple(json.loads(jwts.server_keys())),
        BRIDGE_JWT_AUDIENCE=jwts.AUDIENCE,
        BRIDGE_JWT_ISSUER=jwts.ISSUER,
    ):
        for kind in KINDS:
            token = makers[kind]("bench")
            user_token_claims(token)  # warm: keys parsed, caches filled
            started = time.process_time()
            for _ in range(rounds):
                user_token_claims(token)
            found[kind] = (time.process_time() - started) / rounds * 1e6
    return found


async def _handshakes(url: str, tokens: list[str]) -> list[float]:
    latencies = []
    for token in tokens:
        started = time.perf_counter()
        async with websockets.connect(
            f"{url}/ws?token={token}", open_timeout=30, ping_interval=None
        ) as connection:
            frame = json.loads(await connection.recv())
            latencies.append(time.perf_counter() - started)
            if frame["type"] != "connected":
                raise RuntimeError(f"handshake refused: {frame}")
    return latencies


def measure_handshakes(count: int) -> dict[str, dict[str, float]]:
    from tests.support import jwts
    from tests.support.credentials import SERVER_SECRET_KEY, token_mode_env
    from tests.support.daphne import running_daphnes

    makers = _tokens(SERVER_SECRET_KEY)
    redis = EmbeddedRedis().start()
    workdir = Path(tempfile.mkdtemp(prefix="bridge-jwt-bench-"))
    found: dict[str, dict[str, float]] = {}
    try:
        env = token_mode_env(
            BRIDGE_JWT_KEYS=jwts.server_keys(),
            BRIDGE_JWT_AUDIENCE=jwts.AUDIENCE,
            BRIDGE_JWT_ISSUER=jwts.ISSUER,
            BRIDGE_LOG_FORMAT="text",
            BRIDGE_MAX_CONNECTIONS_PER_USER="1000",
        )
        with running_daphnes(redis.url, workdir, 1, **env) as (server,):
            pid = server.process.pid
            # Warm-up: the first handshakes import and connect lazily.
            for kind in HANDSHAKE_KINDS:
                asyncio.run(_handshakes(server.ws, [makers[kind]("warm")] * 50))
            latencies: dict[str, list[float]] = {kind: [] for kind in HANDSHAKE_KINDS}
            cpu = dict.fromkeys(HANDSHAKE_KINDS, 0.0)
            # Kinds take turns in ROUNDS slices, so that drift (warm-up, other
            # load on a shared VM) spreads over all of them alike.
            for _ in range(ROUNDS):
                for kind in HANDSHAKE_KINDS:
                    tokens = [makers[kind](f"b{n}") for n in range(count // ROUNDS)]
                    cpu_before = cpu_seconds(pid) or 0.0
                    latencies[kind] += asyncio.run(_handshakes(server.ws, tokens))
                    cpu[kind] += (cpu_seconds(pid) or 0.0) - cpu_before
            for kind, measured in latencies.items():
                measured.sort()
                found[kind] = {
                    "median_ms": statistics.median(measured) * 1000,
                    "p95_ms": measured[int(len(measured) * 0.95) - 1] * 1000,
                    "server_cpu_ms": cpu[kind] / len(measured) * 1000,
                }
    finally:
        redis.stop()
    return found


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=1000)
    parser.add_argument("--verify-rounds", type=int, default=5000)
    args = parser.parse_args()
    _setup_django()
    info = machine_info()
    verify = measure_verify(args.verify_rounds)
    handshakes = measure_handshakes(args.handshakes)
    base = verify["bridge"]
    print(
        f"machine: {info['cpu_model']}, {info['nproc']} usable CPUs, "
        f"Python {info['python']}, git {info['git']}"
    )
    print(f"\nverify path (user_token_claims), {args.verify_rounds} rounds, CPU:")
    print(
        _table(
            [["token", "µs/verify", "× bridge"]]
            + [[k, f"{verify[k]:.1f}", f"{verify[k] / base:.2f}"] for k in KINDS]
        )
    )
    print(f"\nWebSocket handshakes against one daphne, {args.handshakes} each:")
    base_row = handshakes["bridge"]
    rows = [["token", "median ms", "p95 ms", "server CPU ms", "CPU × bridge"]]
    for kind in HANDSHAKE_KINDS:
        row = handshakes[kind]
        rows.append(
            [
                kind,
                f"{row['median_ms']:.2f}",
                f"{row['p95_ms']:.2f}",
                f"{row['server_cpu_ms']:.2f}",
                f"{row['server_cpu_ms'] / base_row['server_cpu_ms']:.2f}",
            ]
        )
    print(_table(rows))


if __name__ == "__main__":
    main()
