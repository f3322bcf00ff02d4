"""A markdown table of one or more `bench.run --json` files (for docs and notes).

    python -m bench.markdown bench/results/run.json [more.json ...]

One row per scenario: Bridge's and the reference's deliveries per second and
their ratio, p99 latency, server CPU ms per message, RSS per connection, lost
and duplicate deliveries, and the load average of each run.

A headline run (targets `bridge`, `ref-uvicorn`, `ref-daphne`) gets the
headline table instead: per scenario and figure, the three values,
bridge / ref-uvicorn (the ratio to report), bridge / ref-daphne and
ref-uvicorn / ref-daphne (the server's share), as in docs/performance.md.
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


HEADLINE_TARGETS = ("bridge", "ref-uvicorn", "ref-daphne")


def _per(key: str, scale: float):
    def value(result: dict[str, Any]) -> float | None:
        cpu, count = result.get("server_cpu_s"), result.get(key)
        if not isinstance(cpu, int | float) or not count:
            return None
        return cpu * scale / count

    return value


def _figures(scenario: str) -> list[tuple[str, Any, int]]:
    """(label, getter, decimals) of the headline table for one scenario."""
    figures: list[tuple[str, Any, int]] = [
        ("deliveries/s", lambda r: r.get("deliveries_per_s"), 0)
    ]
    if scenario in ("S1", "S2", "S3", "S5"):
        figures.append(("server CPU ms per message", _per("accepted", 1000), 2))
    if scenario in ("S3", "S6"):
        figures.append(("server CPU µs per delivery", _per("delivered", 1e6), 1))
    if scenario == "S7":
        figures.append(
            ("server CPU µs per part delivered", _per("parts_delivered", 1e6), 1)
        )
    figures.append(
        ("latency p99 ms", lambda r: (r.get("latency_ms") or {}).get("p99"), 1)
    )
    figures.append(("RSS per connection KB", lambda r: r.get("rss_per_conn_kb"), 1))
    return figures


def headline_table(results: dict[tuple[str, str], dict[str, Any]]) -> str:
    lines = [
        "| scenario | figure | bridge | ref-uvicorn | ref-daphne "
        "| **bridge / ref-uvicorn** | bridge / ref-daphne | ref-uvicorn / ref-daphne |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def ratio(x: float | None, y: float | None) -> str:
        return f"{x / y:.2f}x" if x is not None and y else "-"

    for scenario in sorted({key[0] for key in results}):
        found = [results.get((scenario, name)) for name in HEADLINE_TARGETS]
        if found[0] is None:
            continue
        for label, getter, decimals in _figures(scenario):
            b, u, d = (getter(r) if r else None for r in found)
            if b is None and u is None and d is None:
                continue
            cells = [f"{v:,.{decimals}f}" if v is not None else "-" for v in (b, u, d)]
            lines.append(
                f"| {scenario} | {label} | {' | '.join(cells)} | **{ratio(b, u)}**"
                f" | {ratio(b, d)} | {ratio(u, d)} |"
            )
        if "lost" in found[0]:
            losses = [
                f"{r['lost']}/{r['duplicates']}" if r and "lost" in r else "-"
                for r in found
            ]
            lines.append(
                f"| {scenario} | lost / duplicates | {' | '.join(losses)} | | | |"
            )
    return "\n".join(lines)


def table(path: Path) -> str:
    document = json.loads(path.read_text())
    results = {(r["scenario"], r["target"]): r for r in document["results"]}
    if any(target == "ref-uvicorn" for _scenario, target in results):
        return headline_table(results)
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
