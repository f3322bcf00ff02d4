"""Scenarios S1..S7, and how one scenario runs against one target."""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
from dataclasses import dataclass, replace
from typing import Literal

import httpx

from bench import load
from bench.machine import (
    ProcSample,
    client_cpu_seconds,
    load_average,
    system_busy_seconds,
)
from bench.targets import Target

Mode = Literal["closed", "open", "idle"]

# S6's topic. Its namespace must exist on Bridge (SPEC §8): the bench starts
# Bridge with BRIDGE_TOPIC_NAMESPACES=bench:public (Scenario.server_env).
TOPIC = "bench:fanout"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    mode: Mode
    connections: int
    users: int  # connections are spread over this many users (C/U per user)
    pushes: int = 0  # messages, for closed-loop scenarios
    concurrency: int = 50  # requests in flight (closed loop) / HTTP pool (open loop)
    batch: int | None = None  # None: POST /sse/push; n: POST /sse/push/batch
    rate: float = 0.0  # open loop: pushes per second
    duration: float = 0.0  # open loop: seconds; idle: seconds to hold the connections
    # Topic fan-out (S6): every connection subscribes to this topic and every
    # push targets it (SPEC §8) instead of a user.
    topic: str | None = None
    # Streamed messages (S7): each of `pushes` streams is this many parts to
    # `topic` over HTTP (SPEC §9), the last one final; 0: ordinary pushes.
    stream_parts: int = 0
    # Environment Bridge's server processes need for this scenario (KEY, VALUE).
    server_env: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        per_user = self.connections / self.users if self.users else 0
        shape = f"{self.connections} conns"
        if per_user != 1:
            shape += f" ({self.users} users x {per_user:g})"
        if self.topic is not None:
            shape += f" subscribed to {self.topic}"
        if self.stream_parts:
            what = f"{self.pushes} streamed messages of {self.stream_parts} parts"
            what += f", {self.concurrency} in flight"
            parts = self.pushes * self.stream_parts * self.connections
            what += f" -> {parts:,} parts + {self.pushes * self.connections:,}"
            what += " messages delivered"
        elif self.mode == "closed" and self.topic is not None:
            what = f"{self.pushes} topic pushes"
            what += f" in batches of {self.batch}" if self.batch else " single"
            what += f" @ concurrency {self.concurrency}"
            what += f" -> {self.pushes * self.connections:,} deliveries"
        elif self.mode == "closed":
            what = f"{self.pushes} msgs"
            what += f" in batches of {self.batch}" if self.batch else " single"
            what += f" @ concurrency {self.concurrency}"
        elif self.mode == "open":
            what = f"{self.rate:g} pushes/s for {self.duration:g} s (open loop)"
        else:
            what = f"idle {self.duration:g} s"
        return f"{shape}, {what}"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "S1", "single pushes", "closed", connections=1000, users=1000,
            pushes=20000, concurrency=50,
        ),
        Scenario(
            "S2", "batched pushes", "closed", connections=1000, users=1000,
            pushes=20000, concurrency=4, batch=100,
        ),
        Scenario(
            "S3", "fan-out to 5 conns/user", "closed", connections=500, users=100,
            pushes=5000, concurrency=50,
        ),
        Scenario(
            "S4", "RSS per idle connection", "idle", connections=5000, users=5000,
            duration=3,
        ),
        Scenario(
            "S5", "open-loop latency", "open", connections=1000, users=1000,
            concurrency=100, rate=500, duration=10,
        ),
        Scenario(
            "S6", "topic fan-out", "closed", connections=1000, users=1000,
            pushes=2000, concurrency=50, topic=TOPIC,
            server_env=(("BRIDGE_TOPIC_NAMESPACES", "bench:public"),),
        ),
        Scenario(
            "S7", "streamed replies to a topic", "closed", connections=100,
            users=100, pushes=20, concurrency=5, topic=TOPIC, stream_parts=100,
            server_env=(("BRIDGE_TOPIC_NAMESPACES", "bench:public"),),
        ),
    )
}  # fmt: skip

# Printed once a scenario's connections are open and its pushes begin.
PUSHING = "pushing"

# --quick: about a tenth of each scenario, for a smoke check.
QUICK: dict[str, dict] = {
    "S1": {"connections": 100, "users": 100, "pushes": 2000},
    "S2": {"connections": 100, "users": 100, "pushes": 2000},
    "S3": {"connections": 50, "users": 10, "pushes": 500},
    "S4": {"connections": 500, "users": 500, "duration": 1},
    "S5": {"connections": 100, "users": 100, "rate": 250, "duration": 2},
    "S6": {"connections": 100, "users": 100, "pushes": 200},
    # S7 keeps its shape (100 parts to 100 subscribers), with fewer streams.
    "S7": {"pushes": 4, "concurrency": 4},
}


def server_env(selected: list[Scenario]) -> dict[str, str]:
    """The environment Bridge's processes need for every selected scenario."""
    env: dict[str, str] = {}
    for scenario in selected:
        env.update(scenario.server_env)
    return env


def build(name: str, *, quick: bool = False, **overrides) -> Scenario:
    """Scenario `name`, at quick size if asked, with command-line overrides.

    Overriding `connections` without `users` keeps the scenario's connections
    per user (so S3 --connections 50 is 10 users x 5)."""
    base = SCENARIOS[name]
    if quick:
        base = replace(base, **QUICK[name])
    given = {key: value for key, value in overrides.items() if value is not None}
    if "connections" in given and "users" not in given:
        per_user = max(1, base.connections // base.users)
        given["users"] = max(1, given["connections"] // per_user)
    if given.get("batch") == 0:
        given["batch"] = None
    scenario = replace(base, **given)
    if scenario.users > scenario.connections:
        scenario = replace(scenario, users=scenario.connections)
    return scenario


# --- running one scenario -----------------------------------------------------------


@dataclass
class Options:
    drain_timeout: float = 10.0
    connect_concurrency: int = 100
    http_timeout: float = 60.0
    settle: float = 1.0  # after connecting, before measuring RSS


_LOG_ERROR = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")
_LOG_WARNING = re.compile(r"\bWARNING\b")
_EXCERPT_LINES = 80


def _log_findings(log: str) -> dict:
    """Error and warning lines of a server log, with their tracebacks."""
    lines = log.splitlines()
    errors = warnings = 0
    excerpt: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        is_error = bool(_LOG_ERROR.search(line))
        is_warning = not is_error and bool(_LOG_WARNING.search(line))
        errors += is_error
        warnings += is_warning
        if (is_error or is_warning) and len(excerpt) < _EXCERPT_LINES:
            excerpt.append(line)
            # A traceback: indented lines, then the exception line.
            j = i + 1
            while j < len(lines) and (
                lines[j].startswith((" ", "\t", "Traceback", "During handling"))
                or not lines[j].strip()
            ):
                j += 1
            if j > i + 1 and j < len(lines):
                j += 1
            excerpt.extend(lines[i + 1 : j][: _EXCERPT_LINES - len(excerpt)])
            i = j
            continue
        i += 1
    return {
        "log_error_lines": errors,
        "log_warning_lines": warnings,
        "log_excerpt": "\n".join(excerpt),
    }


async def run(target: Target, scenario: Scenario, options: Options) -> dict:
    """Run one scenario; returns a flat dict of results (report.ROWS reads them)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    tag = f"b{scenario.name.lower()}{secrets.token_hex(3)}"
    users = [f"{tag}u{i}" for i in range(scenario.users)]
    result: dict = {
        "scenario": scenario.name,
        "title": scenario.title,
        "description": scenario.describe(),
        "target": target.name,
        "config": {
            "connections": scenario.connections,
            "users": scenario.users,
            "pushes": scenario.pushes,
            "concurrency": scenario.concurrency,
            "batch": scenario.batch,
            "rate": scenario.rate,
            "duration": scenario.duration,
            "mode": scenario.mode,
            "topic": scenario.topic,
            "stream_parts": scenario.stream_parts,
            "processes": len(target.http_urls),
        },
    }
    log_mark = target.log_mark()
    server_pids = target.server_pids()
    redis_pids = target.aux_pids().get("redis", [])

    before = ProcSample.take(server_pids)
    pool = load.ClientPool(
        target.ws_urls,
        users,
        scenario.connections,
        connect_concurrency=options.connect_concurrency,
        topic=scenario.topic,
        queries=target.ws_query(users),
    )
    connect_started = loop.time()
    try:
        await pool.open()
        connect_s = loop.time() - connect_started
        await asyncio.sleep(options.settle)
        connected = ProcSample.take(server_pids)
        opened = len(pool.open_conns)
        handshakes = load.percentiles(
            [c.handshake_s for c in pool.open_conns if c.handshake_s is not None]
        )
        if scenario.topic is not None:
            subscribes = [c.subscribe_s for c in pool.open_conns]
            result["subscribe_ms"] = _ms(
                load.percentiles([s for s in subscribes if s is not None])
            )
        result.update(
            connections_open=opened,
            connect_failures=dict(
                _count(c.connect_error for c in pool.conns if c.connect_error)
            ),
            connect_s=connect_s,
            connects_per_s=opened / connect_s if connect_s else None,
            handshake_ms=_ms(handshakes),
            rss_before_kb=before.rss_kb,
            rss_connected_kb=connected.rss_kb,
            rss_per_conn_kb=(
                (connected.rss_kb - before.rss_kb) / opened
                if opened and connected.rss_kb is not None and before.rss_kb is not None
                else None
            ),
        )

        ledger = load.Ledger()
        if scenario.topic is not None and not opened:
            # Nothing subscribed (a server without topics, or without the
            # namespace): pushing would measure nothing. One probe push shows
            # how the HTTP side answers, for the report.
            result["skipped"] = await _topic_probe(target, scenario, options, pool)
        elif scenario.mode == "idle":
            cpu0 = _cpu(server_pids, redis_pids)
            await asyncio.sleep(scenario.duration)
            result.update(_cpu_delta(cpu0, _cpu(server_pids, redis_pids)))
            result["idle_s"] = scenario.duration
        else:
            http = load.HttpPool(
                target.http_urls,
                scenario.concurrency,
                options.http_timeout,
                target.http_headers,
            )
            async with http:
                cpu0 = _cpu(server_pids, redis_pids)
                # bench.profile starts sampling at this line, not during connects.
                print(f"    {PUSHING} ({opened} connections open)", file=sys.stderr)
                if scenario.stream_parts:
                    assert scenario.topic is not None
                    await load.stream_loop(
                        http,
                        scenario.topic,
                        tag=tag,
                        streams=scenario.pushes,
                        parts=scenario.stream_parts,
                        ledger=ledger,
                    )
                elif scenario.mode == "closed":
                    topic = scenario.topic
                    await load.closed_loop(
                        http,
                        [topic] if topic is not None else users,
                        tag=tag,
                        messages=scenario.pushes,
                        batch=scenario.batch,
                        ledger=ledger,
                        target_key="topic" if topic is not None else "user_id",
                    )
                else:
                    await load.open_loop(
                        http,
                        users,
                        tag=tag,
                        rate=scenario.rate,
                        duration=scenario.duration,
                        ledger=ledger,
                    )
            expected = load.expected_deliveries(ledger, pool.connections_per_stream())
            if scenario.stream_parts:
                parts = sum(len(times) for times in ledger.stream_parts.values())
                expected += parts * len(pool.open_conns)
            await load.drain(pool, expected, quiet_for=options.drain_timeout)
            cpu1 = _cpu(server_pids, redis_pids)
            got = load.reconcile(ledger, pool)
            result.update(_pushes(ledger, got, scenario))
            if scenario.stream_parts:
                parts = load.reconcile_streams(ledger, pool)
                result.update(_streams(ledger, parts, got, result))
            result.update(_cpu_delta(cpu0, cpu1))
            result["closed_by_server"] = dict(pool.closed_by_server())
        end = ProcSample.take(server_pids)
        result["rss_end_kb"] = end.rss_kb
    finally:
        await pool.close()

    result["server_dead"] = target.dead()
    result.update(_log_findings(target.log_since(log_mark)))
    result["wall_s"] = loop.time() - started
    return result


async def _topic_probe(
    target: Target, scenario: Scenario, options: Options, pool: load.ClientPool
) -> str:
    """Why a topic scenario did not push: the subscribe refusals and the reply
    to one probe push to the topic."""
    failures = _count(c.connect_error for c in pool.conns if c.connect_error)
    body = {"topic": scenario.topic, "event": "bench", "data": {"probe": True}}
    try:
        async with httpx.AsyncClient(timeout=options.http_timeout) as client:
            reply = await client.post(target.http_urls[0] + "/sse/push", json=body)
        answer = f"{reply.status_code} {load.one_line(reply.text)}"
    except httpx.HTTPError as exc:
        answer = f"{type(exc).__name__}: {exc}"
    return (
        f"no connection could subscribe to {scenario.topic} ({failures}), so no"
        f" pushes were sent; one probe POST /sse/push to the topic answered {answer}"
    )


def _cpu(server_pids: list[int], redis_pids: list[int]) -> tuple:
    return (
        ProcSample.take(server_pids).cpu_s,
        ProcSample.take(redis_pids).cpu_s,
        client_cpu_seconds(),
        asyncio.get_running_loop().time(),
        system_busy_seconds(),
    )


def _cpu_delta(first: tuple, second: tuple) -> dict:
    def delta(i: int) -> float | None:
        if first[i] is None or second[i] is None:
            return None
        return second[i] - first[i]

    ours = [delta(i) for i in range(3)]
    busy = delta(4)
    return {
        "server_cpu_s": ours[0],
        "redis_cpu_s": ours[1],
        "client_cpu_s": ours[2],
        "measured_s": delta(3),
        # Everything else on the machine meanwhile: other work competing for
        # the CPUs makes every figure worse; compare runs only when this is low.
        "other_cpu_s": (
            busy - sum(v for v in ours if v is not None) if busy is not None else None
        ),
        "load_avg_1m": load_average(),
    }


def _pushes(ledger: load.Ledger, got: load.Deliveries, scenario: Scenario) -> dict:
    first = ledger.first_send
    push_s = (ledger.last_reply - first) if first and ledger.last_reply else None
    deliver_s = (got.last_receive - first) if first and got.last_receive else None
    accepted = len(ledger.accepted)
    found = {
        "attempted": ledger.attempted,
        "requests": ledger.requests,
        "accepted": accepted,
        "replies": dict(ledger.replies),
        "non_202": {k: v for k, v in ledger.replies.items() if k != "202"},
        "error_samples": ledger.sample_errors,
        "push_s": push_s,
        "pushes_per_s": accepted / push_s if push_s else None,
        "deliver_s": deliver_s,
        "expected": got.expected,
        "delivered": got.delivered,
        "deliveries_per_s": got.delivered / deliver_s if deliver_s else None,
        "lost": got.lost,
        "duplicates": got.duplicates,
        "unexpected": got.unexpected,
        # Deliveries of pushes the server refused (SPEC: a 503 sends nothing).
        "delivered_despite_error": dict(got.delivered_rejected),
        "refused_pushes": len(ledger.rejected),
        "refused_pushes_delivered": len(got.rejected_pushes_seen),
        "seq_errors": got.seq_errors,
        "seq_gaps": got.seq_gaps,
        "seq_mismatches": got.seq_mismatches,
        "latency_ms": _ms(load.percentiles(got.latencies)),
        "reply_ms": _ms(load.percentiles(ledger.reply_latency)),
        "lost_users": len(got.lost_by_user),
        "lost_sample": dict(got.lost_by_user.most_common(5)),
    }
    if scenario.topic is not None:
        # What each topic push's reply said about its audience (SPEC §8
        # `subscribers`), to set beside the connections that subscribed.
        counts = ledger.subscribers
        found["reply_subscribers_min"] = min(counts) if counts else None
        found["reply_subscribers_max"] = max(counts) if counts else None
    if scenario.mode == "open":
        found["rate_target"] = scenario.rate
        span = (ledger.last_send or 0) - (first or 0)
        # Sends are due at 0, 1/rate, ..., (n-1)/rate: n-1 intervals.
        found["rate_achieved"] = (ledger.attempted - 1) / span if span > 0 else None
        found["send_lag_ms"] = _ms(load.percentiles(ledger.send_lag))
    return found


def _streams(
    ledger: load.Ledger,
    parts: load.StreamDeliveries,
    finals: load.Deliveries,
    messages: dict,
) -> dict:
    """S7's figures: every part request counts as a push; deliveries are the
    parts and the final messages together (their own rows apart); latency is
    over the parts, the final messages' in `final_latency_ms`."""
    first = ledger.first_send
    last = max(
        (t for t in (parts.last_receive, finals.last_receive) if t),
        default=None,
    )
    deliver_s = (last - first) if first and last else None
    accepted = sum(len(times) for times in ledger.stream_parts.values())
    delivered = parts.delivered + messages["delivered"]
    return {
        "accepted": accepted,
        "pushes_per_s": accepted / messages["push_s"] if messages["push_s"] else None,
        "streams_sent": len(ledger.stream_parts),
        "streams_finished": len(ledger.accepted),
        "parts_expected": parts.expected,
        "parts_delivered": parts.delivered,
        "parts_lost": parts.lost,
        "parts_duplicates": parts.duplicates,
        "parts_out_of_order": parts.out_of_order,
        "parts_wrong_delta": parts.wrong_delta,
        "parts_unexpected": parts.unexpected,
        "final_before_last_part": parts.final_early,
        "part_index_mismatches": ledger.part_index_mismatches,
        "finals_expected": messages["expected"],
        "finals_delivered": messages["delivered"],
        "final_latency_ms": messages["latency_ms"],
        "expected": parts.expected + messages["expected"],
        "delivered": delivered,
        "lost": parts.lost + messages["lost"],
        "duplicates": parts.duplicates + messages["duplicates"],
        "unexpected": parts.unexpected + messages["unexpected"],
        "deliver_s": deliver_s,
        "deliveries_per_s": delivered / deliver_s if deliver_s else None,
        "latency_ms": _ms(load.percentiles(parts.latencies)),
    }


def _ms(values: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (v * 1000 if v is not None else None) for k, v in values.items()}


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
