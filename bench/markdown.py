"""A markdown table of one or more `bench.run --json` files (for docs and notes).

    python -m bench.markdown bench/results/run.json [more.json ...]

One row per scenario: Bridge's and the reference's deliveries per second and
their ratio, p99 latency, server CPU ms per message, RSS per connection, lost
and duplicate deliveries, and the load average of each run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _row(bridge: dict[str, Any], reference: dict[str, Any] | None) -> str:
    def rate(result):
        value = result and result.get("deliveries_per_s")
        return f"{value:,.0f}/s" if value else "-"

    def p99(result):
        value = result and (result.get("latency_ms") or {}).get("p99")
        return f"{value:,.1f}" if value else "-"

    def cpu(result):
        if not result or not result.get("accepted"):
            return "-"
        return f"{result['server_cpu_s'] * 1000 / result['accepted']:.2f}"

    def rss(result):
        return f"{result['rss_per_conn_kb']:.1f}" if result else "-"

    def loss(result):
        if not result or "lost" not in result:
            return "-"
        return f"{result['lost']}/{result['duplicates']}"

    def load(result):
        return f"{result['load_avg_1m']:.1f}" if result else "-"

    ratio = "-"
    if reference and bridge.get("deliveries_per_s") and reference["deliveries_per_s"]:
        ratio = f"{bridge['deliveries_per_s'] / reference['deliveries_per_s']:.2f}x"
    cells = [
        bridge["scenario"],
        rate(bridge),
        rate(reference),
        ratio,
        p99(bridge),
        p99(reference),
        cpu(bridge),
        cpu(reference),
        rss(bridge),
        rss(reference),
        f"{loss(bridge)}, {loss(reference)}",
        f"{load(bridge)} / {load(reference)}",
    ]
    return "| " + " | ".join(cells) + " |"


def table(path: Path) -> str:
    document = json.loads(path.read_text())
    results = {(r["scenario"], r["target"]): r for r in document["results"]}
    lines = [
        "| scenario | Bridge deliveries | reference | Bridge / reference "
        "| Bridge p99 ms | reference p99 ms | Bridge CPU ms/msg | reference CPU ms/msg "
        "| Bridge RSS KB/conn | reference RSS KB/conn | lost/dup (Bridge, reference) "
        "| load (Bridge / reference) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for scenario in sorted({key[0] for key in results}):
        bridge = results.get((scenario, "bridge"))
        if bridge is not None:
            lines.append(_row(bridge, results.get((scenario, "reference"))))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(arg) for arg in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        print(__doc__)
        return 2
    for path in paths:
        print(f"\n{path}\n")
        print(table(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
