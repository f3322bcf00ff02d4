"""Endurance run (issue 12): does Bridge stay flat for minutes under steady load?

    python -m bench.soak                      # 1,000 connections, 10 minutes
    python -m bench.soak --connections 300 --minutes 2

Starts Bridge as the benchmark does (bench/targets.py: embedded Redis, fresh
SQLite, `--processes` daphnes), connects one client per user spread over the
processes, and then, for `--minutes`:

- pushes single `POST /sse/push` at `--rate` per second, open loop
  (bench/load.py), round-robin over the users;
- reconnects `--churn` (5 %) of the clients each minute at random moments,
  each resuming with `last_seq` = the highest seq it had received;
- keeps one slow reader, from the end of the warm-up minute: a client that
  stops reading its socket while `--slow-rate` pushes of `--slow-kb` each are
  sent to it for `--slow-seconds`,
  and answers Bridge's heartbeat blindly (so only its unread bytes can close
  it); it then reads what is left to learn how its connection ended.

Every minute it prints RSS and open file descriptors of each daphne process
(and Redis), pushes accepted, deliveries, reconnects. At the end: lost and
duplicate deliveries (over all of each client's connections) and the slow
reader's close code. It passes when RSS is flat after the first minute
(every later sample within `--rss-tolerance`, 10 %, of the minute-1 sample),
nothing is lost or duplicated, no push failed, and the slow reader was closed
with 4008 `slow_client` (SPEC §11). Exit status 0 on pass, 1 on fail.

Not part of `make test`: it takes minutes and measures, it does not assert.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed

from bench import load
from bench.machine import raise_nofile_limit, rss_kb
from bench.run import _env_pairs
from bench.slow_reader import SLOW_USER, SlowReader
from bench.targets import BridgeTarget, Target

# RSS is compared with the sample taken after this (connections made, caches
# warm); the slow reader starts then, so what it costs shows as drift.
WARMUP_SECONDS = 60.0


def server_memory(target: Target) -> dict:
    """Each daphne's RSS (MB) now."""
    return {
        "rss_mb": [
            None if (kb := rss_kb(pid)) is None else round(kb / 1024, 1)
            for pid in target.server_pids()
        ]
    }


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


# --- clients that resume --------------------------------------------------------


@dataclass(eq=False)
class Resumer:
    """One user's client across its reconnects: every connection it had."""

    user: str
    url: str
    conns: list[load.Conn] = field(default_factory=list)
    failed_reconnects: int = 0

    @property
    def last_seq(self) -> int:
        return max(
            (seq for conn in self.conns for _b, seq, _t in conn.frames if seq),
            default=0,
        )

    async def connect(self, pool: load.ClientPool, *, resume: bool) -> bool:
        query = f"&last_seq={self.last_seq}" if resume else ""
        for attempt in range(5):
            conn = load.Conn(
                index=len(self.conns), user=self.user, url=self.url + query
            )
            await pool.connect(conn)
            if conn.ws is not None:
                self.conns.append(conn)
                return True
            # 4429 (handshake rate limits, SPEC §11): back off and try again.
            await asyncio.sleep(0.5 * 2**attempt)
        return False

    async def reconnect(self, pool: load.ClientPool) -> None:
        current = self.conns[-1]
        await close_conn(current)
        if not await self.connect(pool, resume=True):
            self.failed_reconnects += 1

    def bids(self) -> Counter:
        return Counter(bid for conn in self.conns for bid, _s, _t in conn.frames)


async def close_conn(conn: load.Conn) -> None:
    if conn.ws is not None and not conn.closed:
        try:
            await asyncio.wait_for(conn.ws.close(), 10)
        except (TimeoutError, OSError, ConnectionClosed):
            conn.ws.transport.abort()
    if conn.reader is not None:
        conn.reader.cancel()
        await asyncio.gather(conn.reader, return_exceptions=True)


async def churn(
    clients: list[Resumer], pool: load.ClientPool, fraction: float, minutes: float
) -> int:
    """Each minute, `fraction` of the clients reconnect at random moments."""
    done = 0
    per_minute = max(1, round(len(clients) * fraction))
    for _minute in range(int(minutes)):
        start = time.monotonic()
        moments = sorted(random.uniform(0, 60) for _ in range(per_minute))
        for moment, client in zip(
            moments, random.sample(clients, per_minute), strict=True
        ):
            await asyncio.sleep(max(0.0, start + moment - time.monotonic()))
            await client.reconnect(pool)
            done += 1
        await asyncio.sleep(max(0.0, start + 60 - time.monotonic()))
    return done


# --- the run ----------------------------------------------------------------------


@dataclass
class Sample:
    minute: int
    rss_mb: list[float | None]
    fds: list[int | None]
    redis_rss_mb: float | None
    accepted: int
    delivered: int
    open_conns: int
    reconnects: int


def sample(target: Target, minute: int, ledger, pool, clients) -> Sample:
    def mb(pid: int) -> float | None:
        kb = rss_kb(pid)
        return None if kb is None else round(kb / 1024, 1)

    redis = target.aux_pids().get("redis", [])
    return Sample(
        minute=minute,
        rss_mb=[mb(pid) for pid in target.server_pids()],
        fds=[open_fds(pid) for pid in target.server_pids()],
        redis_rss_mb=mb(redis[0]) if redis else None,
        accepted=len(ledger.accepted),
        delivered=pool.received,
        open_conns=sum(not c.conns[-1].closed for c in clients if c.conns),
        reconnects=sum(len(c.conns) - 1 for c in clients),
    )


def print_sample(row: Sample) -> None:
    print(
        f"minute {row.minute:>2}: rss MB {row.rss_mb} fds {row.fds} "
        f"redis MB {row.redis_rss_mb} | pushed {row.accepted} delivered "
        f"{row.delivered} open {row.open_conns} reconnects {row.reconnects}",
        flush=True,
    )


async def soak(args: argparse.Namespace, target: Target) -> dict:
    users = [f"soak-{i}" for i in range(args.connections)]
    ws_urls = target.ws_urls
    clients = [
        Resumer(user, f"{ws_urls[i % len(ws_urls)]}/ws?user_id={user}")
        for i, user in enumerate(users)
    ]
    pool = load.ClientPool(ws_urls, users, 0)
    gate = asyncio.Semaphore(100)

    async def first_connect(client: Resumer) -> None:
        async with gate:
            await client.connect(pool, resume=False)

    await asyncio.gather(*(first_connect(client) for client in clients))
    connected = sum(bool(c.conns) for c in clients)
    print(f"connected {connected}/{len(clients)}", flush=True)
    ledger = load.Ledger()
    slow = SlowReader(
        f"{ws_urls[-1]}/ws?user_id={SLOW_USER}",
        args.slow_seconds,
        snapshot=lambda: server_memory(target),
    )
    samples = [sample(target, 0, ledger, pool, clients)]
    print_sample(samples[0])
    duration = args.minutes * 60

    async def every_minute() -> None:
        for minute in range(1, int(args.minutes) + 1):
            await asyncio.sleep(60 * minute - (time.monotonic() - started))
            samples.append(sample(target, minute, ledger, pool, clients))
            print_sample(samples[-1])

    started = time.monotonic()
    async with load.HttpPool(target.http_urls, args.http_pool, 30.0) as http_pool:
        work = [
            load.open_loop(
                http_pool, users, tag="soak", rate=args.rate, duration=duration,
                ledger=ledger,
            ),
            churn(clients, pool, args.churn, args.minutes),
            slow.run(
                target.http_urls[0], args.slow_rate, args.slow_kb,
                start_after=WARMUP_SECONDS,
            ),
            every_minute(),
        ]  # fmt: skip
        await asyncio.gather(*work)
    expected = len(ledger.accepted)
    await load.drain(pool, expected, quiet_for=args.drain_timeout)
    result = reconcile(ledger, clients)
    for client in clients:
        for conn in client.conns:
            await close_conn(conn)
    return verdict(args, samples, ledger, result, slow, clients)


def reconcile(ledger: load.Ledger, clients: list[Resumer]) -> dict:
    """Each accepted push must reach its user's client exactly once, counting
    every connection that client had (resume fills the gaps between them)."""
    wanted: dict[str, set[str]] = {}
    for bid, (user, _sent) in ledger.accepted.items():
        wanted.setdefault(user, set()).add(bid)
    lost = duplicates = unexpected = 0
    for client in clients:
        got = client.bids()
        want = wanted.get(client.user, set())
        lost += len(want - set(got))
        duplicates += sum(count - 1 for count in got.values() if count > 1)
        unexpected += len(set(got) - want)
    return {
        "pushes_accepted": len(ledger.accepted),
        "pushes_failed": dict(Counter(ledger.rejected.values())),
        "deliveries": sum(sum(c.bids().values()) for c in clients),
        "lost": lost,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "history_truncated": sum(
            conn.other_frames["history_truncated"] for c in clients for conn in c.conns
        ),
        "failed_reconnects": sum(c.failed_reconnects for c in clients),
    }


def verdict(args, samples, ledger, result, slow: SlowReader, clients) -> dict:
    baseline = samples[1] if len(samples) > 1 else samples[0]
    drift = []
    for row in samples[2:]:
        for index, (now_mb, base_mb) in enumerate(
            zip(row.rss_mb, baseline.rss_mb, strict=True)
        ):
            if (
                now_mb
                and base_mb
                and abs(now_mb - base_mb) > base_mb * args.rss_tolerance
            ):
                drift.append(
                    f"daphne {index} minute {row.minute}: {base_mb} -> {now_mb} MB"
                )
    checks = {
        "rss_flat_after_warmup": not drift,
        "nothing_lost": result["lost"] == 0 and result["duplicates"] == 0,
        "no_failed_push": not result["pushes_failed"],
        "slow_reader_closed_4008": slow.close_code == 4008,
    }
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "rss_drift": drift,
        **result,
        "slow_reader": {
            "ended": slow.ended,
            "close_code": slow.close_code,
            "error_code_before_close": slow.last_error,
            "pushed": slow.pushed,
            "pushed_mb": round(slow.pushed_bytes / 2**20, 1),
            "frames_read_after_resuming": slow.frames_read,
            "server_before_drain": slow.server_before_drain,
        },
        "samples": [row.__dict__ for row in samples],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--connections", type=int, default=1000, help="clients, one user each (1000)")
    add("--minutes", type=int, default=10, help="length of the run (10)")
    add("--rate", type=float, default=20.0, help="pushes per second (20)")
    add(
        "--churn",
        type=float,
        default=0.05,
        help="clients reconnecting per minute (0.05)",
    )
    add("--processes", type=int, default=2, help="daphne processes (2)")
    add("--http-pool", type=int, default=20, help="HTTP connections for pushes (20)")
    add(
        "--slow-rate", type=float, default=10.0, help="pushes/s to the slow reader (10)"
    )
    add("--slow-kb", type=int, default=32, help="KiB of data per slow push (32)")
    add(
        "--slow-seconds",
        type=float,
        default=90.0,
        help="seconds the slow reader does not read (90)",
    )
    add("--rss-tolerance", type=float, default=0.10, help="allowed RSS drift (0.10)")
    add(
        "--drain-timeout",
        type=float,
        default=15.0,
        help="quiet seconds at the end (15)",
    )
    add(
        "--server-env",
        action="append",
        metavar="KEY=VALUE",
        help="extra environment for the daphnes (repeatable)",
    )
    add("--json", metavar="PATH", help="also write the result as JSON")
    args = parser.parse_args(argv)
    if WARMUP_SECONDS + args.slow_seconds > args.minutes * 60:
        parser.error("the warm-up minute plus --slow-seconds must fit in --minutes")
    return args  # fmt: skip


def server_close_codes(log: str, user_id: str) -> list[int]:
    """The close codes of the user's connections, from the servers' disconnect
    lines (`event=disconnect user_id=<id> ... code=<code>`)."""
    pattern = rf"event=disconnect user_id={re.escape(user_id)} .*?\bcode=(\d+)"
    return [int(code) for code in re.findall(pattern, log)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile_limit(args.connections * 4 + 1000)
    target = BridgeTarget(
        processes=args.processes, extra_env=_env_pairs(args.server_env)
    )
    with target:
        mark = target.log_mark()
        result = asyncio.run(soak(args, target))
        log = target.log_since(mark)
        result["server_tracebacks"] = log.count("Traceback")
        result["slow_reader"]["server_close_codes"] = server_close_codes(log, SLOW_USER)
        result["dead_processes"] = target.dead()
    result["checks"]["no_traceback"] = result["server_tracebacks"] == 0
    # The 4008 close frame waits behind the unread bytes, so the client itself
    # often sees only 1006 (docs/protocol.md); the server's log says why it closed.
    result["checks"]["slow_reader_closed_4008"] = (
        result["slow_reader"]["close_code"] == 4008
        or 4008 in result["slow_reader"]["server_close_codes"]
    )
    result["passed"] = all(result["checks"].values())
    summary = {key: value for key, value in result.items() if key != "samples"}
    print(json.dumps(summary, indent=2), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
