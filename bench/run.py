"""Benchmark Bridge: WebSocket fan-out of HTTP pushes, end to end.

    python -m bench.run                       # the headline run, full size
    python -m bench.run --quick               # every scenario at ~1/10 size
    python -m bench.run --scenario S1,S2,S3,S6,S7 --processes 2   # the headline set
    python -m bench.run --scenario S7 --quick # streamed replies to a topic
    python -m bench.run --scenario S1,S2 --json results.json
    python -m bench.run --scenario S1 --connections 200 --pushes 2000
    python -m bench.run --scenario S6 --processes 2   # topic fan-out
    python -m bench.run --processes 2         # two daphnes, one Redis, one DB
    python -m bench.run --target http://127.0.0.1:8000 --server-pid 1234
    python -m bench.run --no-reference        # Bridge only
    python -m bench.run --reference-only      # the reference bridge only
    python -m bench.run --server uvicorn      # Bridge (dev) and a reference, uvicorn
    python -m bench.run --bridge-config dev   # headline run, Bridge as `make run`

By default each scenario gets a fresh server: an embedded redis-server, a newly
migrated SQLite file in a temporary directory and N daphne processes, Bridge in
its production configuration (DEBUG=0, token mode: an API key on every push, a
token on every WebSocket). Each scenario then runs again against the in-memory
reference bridge (bench/reference.py, no Redis, no database, one process) under
uvicorn (uvloop, httptools; `pip install -e '.[bench]'`) and under daphne, and
the headline table gives bridge/ref-uvicorn (the ratio to report) and
bridge/ref-daphne (the server held equal). `--server S` runs Bridge (dev
configuration unless --bridge-config production) and one reference under S
instead. See bench/README.md for what every figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import report, scenarios
from bench.machine import REPO, machine_info, raise_nofile_limit
from bench.targets import (
    BRIDGE_CONFIGS,
    SERVERS,
    UVICORN_WS,
    BridgeTarget,
    ExternalTarget,
    ReferenceTarget,
    Target,
    TargetError,
    missing_server_packages,
)


def _scenario_names(values: list[str] | None) -> list[str]:
    if not values:
        return list(scenarios.SCENARIOS)
    names = []
    for value in values:
        for name in value.split(","):
            name = name.strip().upper()
            if not name:
                continue
            if name not in scenarios.SCENARIOS:
                known = ", ".join(scenarios.SCENARIOS)
                raise SystemExit(f"unknown scenario {name!r} (known: {known})")
            names.append(name)
    return names


def _env_pairs(values: list[str] | None) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"--server-env wants KEY=VALUE, got {value!r}")
        pairs[key] = val
    return pairs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME[,NAME]",
        help="S1..S7 (repeatable or comma-separated; default: all)",
    )
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every scenario at ~1/10 size (smoke check)",
    )
    size = parser.add_argument_group("overrides (apply to every selected scenario)")
    size.add_argument("--connections", type=int, help="WebSocket connections (C)")
    size.add_argument(
        "--users", type=int, help="distinct users (U); C/U connections per user"
    )
    size.add_argument(
        "--pushes", type=int, help="messages to push (closed loop); S7: streams"
    )
    size.add_argument(
        "--concurrency",
        type=int,
        help="requests in flight (closed loop; S7: streams in flight) / HTTP"
        " connection pool (open loop)",
    )
    size.add_argument(
        "--batch",
        type=int,
        help="messages per POST /sse/push/batch (0: single POST /sse/push)",
    )
    size.add_argument("--rate", type=float, help="open loop: pushes per second")
    size.add_argument(
        "--duration", type=float, help="open loop: seconds; idle (S4): seconds held"
    )
    server = parser.add_argument_group("server")
    server.add_argument(
        "--server",
        choices=SERVERS,
        default=None,
        help="run Bridge and one reference alike under this ASGI server (uvicorn"
        " runs with uvloop and httptools, from the `bench` extra: pip install -e"
        " '.[bench]'). Default: the headline run, Bridge on daphne in its"
        " production configuration against the reference on uvicorn and on"
        " daphne",
    )
    server.add_argument(
        "--bridge-config",
        choices=BRIDGE_CONFIGS,
        default=None,
        help="production: DEBUG=0, token mode (an API key on every push, a token"
        " on every WebSocket), HTTPS posture behind a proxy; dev: DEBUG=1, open"
        " mode, as `make run`. Default: production for the headline run, dev"
        " with --server",
    )
    server.add_argument(
        "--uvicorn-ws",
        choices=UVICORN_WS,
        default=UVICORN_WS[0],
        help=f"uvicorn's WebSocket implementation, where uvicorn runs (default"
        f" {UVICORN_WS[0]})",
    )
    server.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes for Bridge (default 1; the reference always runs"
        " one: its state is a dict in that process)",
    )
    server.add_argument(
        "--target",
        action="append",
        metavar="URL",
        help="bench an already-running server instead (repeatable: one URL per"
        " process)",
    )
    server.add_argument(
        "--server-pid",
        action="append",
        type=int,
        metavar="PID",
        help="with --target: pids whose RSS/CPU to report",
    )
    server.add_argument(
        "--server-env",
        action="append",
        metavar="KEY=VALUE",
        help="extra environment for Bridge's server processes (repeatable)",
    )
    server.add_argument(
        "--app-dir",
        type=Path,
        default=REPO,
        help="serve Bridge from this checkout (default: this repository), e.g. a"
        " `git archive` of another commit",
    )
    which = server.add_mutually_exclusive_group()
    which.add_argument(
        "--no-reference",
        action="store_true",
        help="do not also run each scenario against the in-memory reference bridge",
    )
    which.add_argument(
        "--reference-only",
        action="store_true",
        help="run only the in-memory reference bridge (bench/reference.py)",
    )
    server.add_argument(
        "--reuse-target",
        action="store_true",
        help="start the server once for all scenarios (default: fresh per scenario)",
    )
    server.add_argument(
        "--keep-dir",
        action="store_true",
        help="keep the temporary directory (database, server logs)",
    )
    tuning = parser.add_argument_group("measurement")
    tuning.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="after the last reply, wait this long without progress (default 10 s)",
    )
    tuning.add_argument(
        "--connect-concurrency",
        type=int,
        default=100,
        help="WebSocket handshakes in flight while connecting (default 100)",
    )
    tuning.add_argument(
        "--http-timeout",
        type=float,
        default=60.0,
        help="per push request (default 60 s)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write results as JSON")
    return parser.parse_args(argv)


def target_factories(
    args: argparse.Namespace, scenario_env: dict[str, str] | None = None
) -> list[Callable[[], Target]]:
    """One factory per server under test: Bridge (or --target), then the
    in-memory reference unless --no-reference. The first is the numerator of
    the ratio columns. Bridge's processes get `scenario_env` (what the selected
    scenarios need, e.g. S6's topic namespace), then --server-env over it."""
    if headline(args):
        # The headline run: the reference on the fastest plain stack (uvicorn,
        # uvloop, httptools) is the anchor; on daphne, Bridge's own server, it
        # isolates the server's share of the difference.
        reference = [
            lambda server=server: ReferenceTarget(
                keep_dir=args.keep_dir,
                server=server,
                uvicorn_ws=args.uvicorn_ws,
                name=f"ref-{server}",
            )
            for server in ("uvicorn", "daphne")
        ]
    else:
        reference = [
            lambda: ReferenceTarget(
                keep_dir=args.keep_dir, server=args.server, uvicorn_ws=args.uvicorn_ws
            )
        ]
    if args.reference_only:
        return reference
    if args.target:
        urls, pids = args.target, args.server_pid
        factories = [lambda: ExternalTarget(urls, pids)]
    else:
        env = {**(scenario_env or {}), **_env_pairs(args.server_env)}
        factories = [
            lambda: BridgeTarget(
                processes=args.processes,
                extra_env=env,
                keep_dir=args.keep_dir,
                app_dir=args.app_dir.resolve(),
                server=args.server or "daphne",
                uvicorn_ws=args.uvicorn_ws,
                config=bridge_config(args),
            )
        ]
    return factories if args.no_reference else factories + reference


def headline(args: argparse.Namespace) -> bool:
    """No --server: Bridge on daphne against the reference on uvicorn and daphne."""
    return args.server is None


def bridge_config(args: argparse.Namespace) -> str:
    if args.bridge_config:
        return args.bridge_config
    return "production" if headline(args) else "dev"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _summary(result: dict) -> str:
    parts = [f"{result['connections_open']}/{result['config']['connections']} conns"]
    if "pushes_per_s" in result:
        lat = result["latency_ms"]
        parts += [
            f"{result['accepted']}/{result['attempted']} accepted",
            f"{(result['pushes_per_s'] or 0):.0f} pushes/s",
            f"{(result['deliveries_per_s'] or 0):.0f} deliveries/s",
            f"p50 {lat['p50'] or 0:.1f} ms p99 {lat['p99'] or 0:.1f} ms",
            f"lost {result['lost']} dup {result['duplicates']}",
        ]
    if result.get("skipped"):
        parts.append("pushes skipped: nothing subscribed (see Problems)")
    if result.get("rss_per_conn_kb") is not None:
        parts.append(f"{result['rss_per_conn_kb']:.1f} KB/conn")
    parts.append(f"{result['wall_s']:.1f} s")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, scenario in scenarios.SCENARIOS.items():
            quick = scenarios.build(name, quick=True)
            print(f"{name}  {scenario.title}: {scenario.describe()}")
            print(f"    --quick: {quick.describe()}")
        return 0

    overrides = {
        "connections": args.connections,
        "users": args.users,
        "pushes": args.pushes,
        "concurrency": args.concurrency,
        "batch": args.batch,
        "rate": args.rate,
        "duration": args.duration,
    }
    selected = [
        scenarios.build(name, quick=args.quick, **overrides)
        for name in _scenario_names(args.scenario)
    ]
    # The headline run's references need uvicorn; Bridge alone runs on daphne.
    needs = "uvicorn" if headline(args) and not args.no_reference else args.server
    missing = missing_server_packages(needs or "daphne", args.uvicorn_ws)
    if missing:
        what = "the headline run" if headline(args) else f"--server {args.server}"
        raise SystemExit(
            f"{what} needs {', '.join(missing)}, not installed in"
            f" {sys.executable}.\nInstall the bench extra: pip install -e '.[bench]'"
            " (or: pip install 'uvicorn[standard]')"
        )
    biggest = max(s.connections for s in selected)
    soft, hard = raise_nofile_limit(biggest * 2 + 1000)
    if soft < biggest + 200:
        _progress(
            f"warning: RLIMIT_NOFILE is {soft} (hard {hard}); {biggest} connections"
            " may fail to open"
        )
    options = scenarios.Options(
        drain_timeout=args.drain_timeout,
        connect_concurrency=args.connect_concurrency,
        http_timeout=args.http_timeout,
    )

    machine = machine_info(args.app_dir.resolve())
    uvicorn = f"uvicorn (uvloop, httptools, ws {args.uvicorn_ws})"
    if headline(args):
        machine["server"] = (
            f"Bridge on daphne ({bridge_config(args)} config, {args.processes}"
            f" process(es)); ref-uvicorn on {uvicorn}, ref-daphne on daphne, one"
            " process each"
        )
    else:
        machine["server"] = uvicorn if args.server == "uvicorn" else args.server
        machine["server"] += f"; Bridge {bridge_config(args)} config"
    if args.target:
        machine["server"] += "; Bridge is --target"
    print(report.header(machine), flush=True)
    print(f"  limits  : RLIMIT_NOFILE {soft}/{hard}", flush=True)

    factories = target_factories(args, scenarios.server_env(selected))
    if len(factories) > 1 and args.processes > 1 and not args.target:
        _progress(
            f"note: Bridge runs {args.processes} processes, the reference one;"
            " the ratio compares them as such"
        )
    results: list[dict] = []
    targets_seen: list[dict] = []
    interrupted = False
    # Scenario by scenario, each against every target in turn, so that the two
    # runs a ratio divides are minutes apart, not the whole invocation apart
    # (the machine's load drifts).
    shared: dict[int, Target] = {}
    try:
        try:
            for scenario in selected:
                for index, factory in enumerate(factories):
                    if index in shared:
                        target = shared[index]
                    else:
                        target = factory()
                        _progress(f"[{target.name}] starting server ...")
                        started = time.monotonic()
                        try:
                            target.start()
                        except TargetError as exc:
                            raise TargetError(f"{target.name}: {exc}") from exc
                        _progress(
                            f"[{target.name}] up in {time.monotonic() - started:.1f} s:"
                            f" {', '.join(target.http_urls)}"
                        )
                        targets_seen.append(target.describe())
                        if args.reuse_target:
                            shared[index] = target
                    try:
                        _progress(
                            f"[{target.name}] {scenario.name}: {scenario.describe()}"
                        )
                        result = asyncio.run(scenarios.run(target, scenario, options))
                        results.append(result)
                        _progress(
                            f"[{target.name}] {scenario.name}: {_summary(result)}"
                        )
                    finally:
                        if not args.reuse_target:
                            target.stop()
        finally:
            for target in shared.values():
                target.stop()
    except TargetError as exc:
        _progress(f"server failed: {exc}")
        if not results:
            return 2
    except KeyboardInterrupt:
        interrupted = True
        _progress("interrupted; reporting what finished")

    if results:
        print()
        print(report.legend(results))
        print()
        print(report.table(results))
        ratios = report.ratios(results)
        if ratios:
            print()
            if headline(args):
                print(
                    "Headline: Bridge (daphne, production config) against the"
                    " reference on uvicorn and on daphne; bridge/ref-uvicorn is the"
                    " ratio to report, bridge/ref-daphne holds the server equal"
                )
            print(ratios)
        trouble = report.problems(results, machine.get("nproc"))
        if trouble:
            print("\nProblems:")
            print(trouble)
        else:
            print("\nNo loss, duplicates, non-202 replies or server log errors.")
    if args.json:
        report.write_json(
            args.json,
            machine,
            {**vars(args), "targets": targets_seen, "interrupted": interrupted},
            results,
        )
        print(f"\nJSON written to {args.json}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
