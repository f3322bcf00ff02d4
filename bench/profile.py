"""Where a Bridge server's CPU goes during a benchmark scenario.

    python -m bench.profile --scenario S1 --connections 200 --pushes 3000
    python -m bench.profile --scenario S2 --pushes 20000 --app-dir /tmp/old
    python -m bench.profile --raw /tmp/s1.txt ...   # also keep py-spy's stacks

Runs `python -m bench.run <args> --no-reference`, attaches py-spy to the
daphne (or uvicorn) process once the pushes have started, samples only the
thread holding the GIL (`--gil`: Python CPU, not threads waiting) for
`--seconds`, and prints the samples grouped by the package of the innermost
frame, with that share of the run's "server CPU ms per message". Needs py-spy
(`pip install -e '.[bench]'`) and, on Linux, permission to read another
process's memory: root, or `sysctl kernel.yama.ptrace_scope=0`.

The grouping is coarse and approximate (sampling at 100 Hz, a few thousand
samples); compare shares between runs on one machine, not across machines.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import scenarios

REPO = Path(__file__).resolve().parents[1]

BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    (
        "thread hand-offs (asgiref, threading, concurrent.futures)",
        ("asgiref", "threading.py", "concurrent", "_weakrefset.py"),
    ),
    ("event loop (asyncio, selectors)", ("asyncio", "selectors.py", "uvloop")),
    (
        "HTTP/WebSocket server (twisted, daphne, autobahn, uvicorn)",
        ("twisted", "daphne", "autobahn", "email", "zope", "uvicorn", "websockets"),
    ),
    (
        "Django request path, middleware, URLs, metrics",
        (
            "django/core",
            "django/utils",
            "django/urls",
            "django/http",
            "django/dispatch",
            "django/middleware",
            "django/contrib",
            "django/views",
            "django/conf",
            "whitenoise",
            "django_prometheus",
            "prometheus_client",
        ),
    ),
    ("DRF (views, parsing, serializers)", ("rest_framework",)),
    ("database (Django ORM, sqlite3, psycopg)", ("django/db", "sqlite3", "psycopg")),
    ("Redis client and channel layer", ("redis", "channels_redis", "msgpack")),
    ("Channels consumer machinery", ("channels",)),
    ("Bridge's own code", ("messaging", "bridge_project", "accounts")),
]
OTHER = "other (stdlib: json, logging, uuid, copy, ...)"


def bucket_of(frame: str) -> str:
    match = re.search(r"\(([^:)]+)", frame)
    parts = (match.group(1) if match else "?").split("/")
    key = "/".join(parts[:2]) if parts[0] == "django" else parts[0]
    for name, keys in BUCKETS:
        if key in keys:
            return name
    return OTHER


def summarize(raw: Path) -> tuple[collections.Counter, int]:
    """Samples per bucket, from py-spy's raw (collapsed stacks) output."""
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack:
            continue
        total += int(samples)
        counts[bucket_of(stack.split(";")[-1])] += int(samples)
    return counts, total


def server_pid(bench: subprocess.Popen) -> int | None:
    children = subprocess.run(
        ["pgrep", "-P", str(bench.pid)], capture_output=True, text=True
    ).stdout.split()
    for pid in children:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"daphne" in args or b"uvicorn" in args:
            return int(pid)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=12, help="sampling time")
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args, bench_args = parser.parse_known_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("bench.profile needs py-spy: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        raw = args.raw or Path(scratch) / "stacks.txt"
        log = Path(scratch) / "bench.log"
        with log.open("w") as out:
            bench = subprocess.Popen(
                [sys.executable, "-m", "bench.run", *bench_args, "--no-reference"],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            pid = None
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and bench.poll() is None:
                pid = server_pid(bench)
                if pid and scenarios.PUSHING in log.read_text():
                    break
                time.sleep(0.5)
            if pid is None or bench.poll() is not None:
                print(log.read_text(), file=sys.stderr)
                print("the benchmark ended before its server could be sampled")
                return 1
            time.sleep(3)  # past the first requests' warm-up
            sample = ["--gil", "-r", "100", "-d", str(args.seconds)]
            subprocess.run(
                [py_spy, "record", "--pid", str(pid), *sample, "-f", "raw", "-o", raw],
                check=True,
                capture_output=True,
            )
            bench.wait()
        report = log.read_text()
        counts, total = summarize(raw)
    print("\n".join(line for line in report.splitlines() if line.startswith("[")))
    per_message = re.search(r"server CPU ms per message\s+([\d.]+)", report)
    cpu = float(per_message.group(1)) if per_message else None
    print(f"\n{total} samples of the thread holding the GIL")
    print("| where the CPU goes (innermost frame) | share | ms per message |")
    print("|---|---:|---:|")
    for name in [name for name, _ in BUCKETS] + [OTHER]:
        share = counts[name] / total if total else 0.0
        ms = f"{share * cpu:.2f}" if cpu is not None else "-"
        print(f"| {name} | {100 * share:.0f} % | {ms} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
