"""The human-readable table and the JSON file.

The table has one row per figure and one column per (scenario, target); when
more than one target ran, each scenario also gets a ratio column
(first target / each other target, normally bridge/reference) for the
figures where a ratio means something; ratios() prints the headline ones
again. bench/README.md explains every row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

Getter = Callable[[dict], object]


def _get(*path: str) -> Getter:
    def getter(result: dict) -> object:
        value: object = result
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return getter


def _ratio_of(a: Getter, b: Getter) -> Getter:
    def getter(result: dict) -> object:
        x, y = a(result), b(result)
        if not isinstance(x, int | float) or not isinstance(y, int | float) or not y:
            return None
        return x / y

    return getter


def _counts(getter: Getter) -> Getter:
    def text(result: dict) -> object:
        value = getter(result)
        if value is None:
            return None
        if not value:
            return 0
        return " ".join(f"{k}:{v}" for k, v in sorted(value.items()))

    return text


def _pair(a: Getter, b: Getter) -> Getter:
    def text(result: dict) -> object:
        x, y = a(result), b(result)
        if x is None and y is None:
            return None
        return f"{_fmt(x, 0)}/{_fmt(y, 0)}"

    return text


def _kb_to_mb(getter: Getter) -> Getter:
    def value(result: dict) -> object:
        kb = getter(result)
        return kb / 1024 if isinstance(kb, int | float) else None

    return value


_conns = _pair(_get("connections_open"), _get("config", "connections"))
_server_cores = _ratio_of(_get("server_cpu_s"), _get("measured_s"))
_client_cores = _ratio_of(_get("client_cpu_s"), _get("measured_s"))


def _server_cpu_per_delivery(result: dict) -> object:
    """Server CPU microseconds per delivery received (fan-out scenarios)."""
    cpu, delivered = result.get("server_cpu_s"), result.get("delivered")
    if not isinstance(cpu, int | float) or not delivered:
        return None
    return cpu * 1e6 / delivered


def _server_cpu_per_part(result: dict) -> object:
    """Server CPU microseconds per streamed part received (S7): all the
    server's CPU, the final messages' included, over the parts delivered."""
    cpu, parts = result.get("server_cpu_s"), result.get("parts_delivered")
    if not isinstance(cpu, int | float) or not parts:
        return None
    return cpu * 1e6 / parts


def _server_cpu_per_message(result: dict) -> object:
    cpu, accepted = result.get("server_cpu_s"), result.get("accepted")
    if not isinstance(cpu, int | float) or not accepted:
        return None
    return cpu * 1000 / accepted


# (label, getter, decimals, ratio?) -- ratio: include in the Bridge/reference column.
ROWS: list[tuple[str, Getter, int, bool]] = [
    ("connections open/asked", _conns, 0, False),
    ("users", _get("config", "users"), 0, False),
    ("connect failures", _counts(_get("connect_failures")), 0, False),
    ("connect time s", _get("connect_s"), 1, True),
    ("handshake p50 ms", _get("handshake_ms", "p50"), 1, True),
    ("handshake p99 ms", _get("handshake_ms", "p99"), 1, True),
    ("subscribe p50 ms", _get("subscribe_ms", "p50"), 1, True),
    ("subscribe p99 ms", _get("subscribe_ms", "p99"), 1, True),
    ("pushes accepted/sent", _pair(_get("accepted"), _get("attempted")), 0, False),
    ("non-202 replies", _counts(_get("non_202")), 0, False),
    ("push phase s", _get("push_s"), 2, True),
    ("pushes/s", _get("pushes_per_s"), 0, True),
    ("open loop: target/s", _get("rate_target"), 0, False),
    ("open loop: achieved/s", _get("rate_achieved"), 0, False),
    ("open loop: send lag p99 ms", _get("send_lag_ms", "p99"), 1, False),
    ("deliveries got/expected", _pair(_get("delivered"), _get("expected")), 0, False),
    (
        "topic reply subscribers min/max",
        _pair(_get("reply_subscribers_min"), _get("reply_subscribers_max")),
        0,
        False,
    ),
    (
        "streams finished/sent",
        _pair(_get("streams_finished"), _get("streams_sent")),
        0,
        False,
    ),
    (
        "stream parts got/expected",
        _pair(_get("parts_delivered"), _get("parts_expected")),
        0,
        False,
    ),
    (
        "stream finals got/expected",
        _pair(_get("finals_delivered"), _get("finals_expected")),
        0,
        False,
    ),
    ("deliveries/s", _get("deliveries_per_s"), 0, True),
    ("latency p50 ms", _get("latency_ms", "p50"), 1, True),
    ("latency p95 ms", _get("latency_ms", "p95"), 1, True),
    ("latency p99 ms", _get("latency_ms", "p99"), 1, True),
    ("latency max ms", _get("latency_ms", "max"), 1, True),
    ("final message p99 ms", _get("final_latency_ms", "p99"), 1, True),
    ("reply p50 ms", _get("reply_ms", "p50"), 1, True),
    ("reply p99 ms", _get("reply_ms", "p99"), 1, True),
    ("lost deliveries", _get("lost"), 0, False),
    ("duplicate deliveries", _get("duplicates"), 0, False),
    ("unexpected deliveries", _get("unexpected"), 0, False),
    ("  of which after non-202", _counts(_get("delivered_despite_error")), 0, False),
    ("stream parts lost", _get("parts_lost"), 0, False),
    ("stream parts duplicated", _get("parts_duplicates"), 0, False),
    ("stream parts out of order", _get("parts_out_of_order"), 0, False),
    ("stream parts wrong delta", _get("parts_wrong_delta"), 0, False),
    ("stream final before last part", _get("final_before_last_part"), 0, False),
    ("seq out of order", _get("seq_errors"), 0, False),
    ("topic seq not the reply's", _get("seq_mismatches"), 0, False),
    ("ws closed by server", _counts(_get("closed_by_server")), 0, False),
    ("server RSS before MB", _kb_to_mb(_get("rss_before_kb")), 1, True),
    ("server RSS connected MB", _kb_to_mb(_get("rss_connected_kb")), 1, True),
    ("server RSS end MB", _kb_to_mb(_get("rss_end_kb")), 1, True),
    ("RSS per connection KB", _get("rss_per_conn_kb"), 1, True),
    ("server CPU s", _get("server_cpu_s"), 2, True),
    ("server CPU cores busy", _server_cores, 2, True),
    ("server CPU ms per message", _server_cpu_per_message, 2, True),
    ("server CPU us per delivery", _server_cpu_per_delivery, 2, True),
    ("server CPU us per part delivered", _server_cpu_per_part, 2, True),
    ("redis CPU s", _get("redis_cpu_s"), 2, True),
    ("client CPU s", _get("client_cpu_s"), 2, True),
    ("client CPU cores busy", _client_cores, 2, False),
    ("other processes CPU s", _get("other_cpu_s"), 2, False),
    ("load average (1 min)", _get("load_avg_1m"), 2, False),
    ("server log errors", _get("log_error_lines"), 0, False),
    ("server log warnings", _get("log_warning_lines"), 0, False),
    ("wall time s", _get("wall_s"), 1, True),
]


def _fmt(value: object, decimals: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{decimals}f}"
    return str(value)


def header(machine: dict) -> str:
    packages = " ".join(f"{k} {v}" for k, v in machine.get("packages", {}).items())
    cpu = f"{machine['nproc']} CPUs usable (nproc), {machine['cpu_model']}"
    if machine.get("cpu_quota"):
        cpu += f", cgroup quota {machine['cpu_quota']}"
    if machine.get("mem_total_mb"):
        cpu += f", {machine['mem_total_mb']} MB RAM"
    python = f"{machine['python_impl']} {machine['python']}"
    lines = [
        "Bridge benchmark",
        f"  machine : {cpu}",
        f"  python  : {python}, kernel {machine['kernel']}",
        f"  packages: {packages}",
        f"  app     : {machine.get('app_dir')} @ {machine.get('git') or '-'}",
    ]
    if machine.get("server"):
        lines.append(f"  server  : {machine['server']}")
    if machine.get("bridge_env"):
        env = " ".join(f"{k}={v}" for k, v in machine["bridge_env"].items())
        lines.append(f"  env     : {env}")
    return "\n".join(lines)


def table(results: list[dict]) -> str:
    """Rows = figures, columns = scenario (x target, plus ratios when several)."""
    targets = list(dict.fromkeys(r["target"] for r in results))
    scenarios = list(dict.fromkeys(r["scenario"] for r in results))
    by_key = {(r["scenario"], r["target"]): r for r in results}
    columns: list[tuple[str, Callable[[int], str]]] = []
    for scenario in scenarios:
        for target in targets:
            result = by_key.get((scenario, target))
            label = scenario if len(targets) == 1 else f"{scenario} {target}"

            def cell(row: int, result=result) -> str:
                if result is None:
                    return "-"
                _label, getter, decimals, _ratio = ROWS[row]
                return _fmt(getter(result), decimals)

            columns.append((label, cell))
        base = by_key.get((scenario, targets[0]))
        for other in targets[1:]:
            result = by_key.get((scenario, other))

            def ratio(row: int, base=base, result=result) -> str:
                _label, getter, _decimals, wanted = ROWS[row]
                if not wanted or base is None or result is None:
                    return ""
                x, y = getter(base), getter(result)
                if not isinstance(x, int | float) or not isinstance(y, int | float):
                    return ""
                return f"{x / y:.2f}x" if y else ""

            columns.append((f"{scenario} {targets[0]}/{other}", ratio))

    label_width = max(len(row[0]) for row in ROWS)
    cells = [[cell(i) for _label, cell in columns] for i in range(len(ROWS))]
    widths = [
        max(len(label), *(len(cells[i][c]) for i in range(len(ROWS))))
        for c, (label, _cell) in enumerate(columns)
    ]
    titles = [label.rjust(w) for (label, _c), w in zip(columns, widths, strict=True)]
    lines = [" " * label_width + "  " + "  ".join(titles)]
    lines.append("-" * len(lines[0]))
    for i, (label, *_rest) in enumerate(ROWS):
        row = cells[i]
        if all(value in ("-", "") for value in row):
            continue  # a figure no scenario in this run has
        lines.append(
            label.ljust(label_width)
            + "  "
            + "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True))
        )
    return "\n".join(lines)


# The headline comparison: (label, getter, decimals).
RATIO_ROWS: list[tuple[str, Getter, int]] = [
    ("pushes/s", _get("pushes_per_s"), 0),
    ("deliveries/s", _get("deliveries_per_s"), 0),
    ("latency p99 ms", _get("latency_ms", "p99"), 1),
    ("server CPU ms per message", _server_cpu_per_message, 2),
    ("server CPU us per delivery", _server_cpu_per_delivery, 2),
    ("server CPU us per part", _server_cpu_per_part, 2),
    ("RSS per connection KB", _get("rss_per_conn_kb"), 1),
]


def ratios(results: list[dict]) -> str:
    """The headline table: per scenario and figure, each target's value, then
    the first target / each other target; with loss and duplicates of each.
    In the headline run that is bridge, ref-uvicorn, ref-daphne,
    bridge/ref-uvicorn (the ratio to report) and bridge/ref-daphne (the same
    with the reference on Bridge's server: the gap between the two is the
    server's share). Empty when only one target ran."""
    targets = list(dict.fromkeys(r["target"] for r in results))
    if len(targets) < 2:
        return ""
    by_key = {(r["scenario"], r["target"]): r for r in results}
    base_name = targets[0]
    others = targets[1:]
    rows: list[list[str]] = []
    for scenario in dict.fromkeys(r["scenario"] for r in results):
        base = by_key.get((scenario, base_name))
        if base is None:
            continue
        found = [by_key.get((scenario, other)) for other in others]
        for label, getter, decimals in RATIO_ROWS:
            values = [getter(base)] + [getter(r) if r else None for r in found]
            if all(v is None for v in values):
                continue
            x = values[0]
            cells = [f"{scenario} {label}", *(_fmt(v, decimals) for v in values)]
            for y in values[1:]:
                cells.append(
                    f"{x / y:.2f}x"
                    if isinstance(x, int | float) and isinstance(y, int | float) and y
                    else "-"
                )
            rows.append(cells)
        if "lost" in base:
            pairs = [
                f"{_fmt(r.get('lost'), 0)}/{_fmt(r.get('duplicates'), 0)}" if r else "-"
                for r in (base, *found)
            ]
            rows.append([f"{scenario} lost/duplicates", *pairs, *([""] * len(others))])
    if not rows:
        return ""
    titles = ["figure", base_name, *others, *(f"{base_name}/{o}" for o in others)]
    widths = [max(len(t), *(len(r[i]) for r in rows)) for i, t in enumerate(titles)]
    lines = [
        "  ".join(
            t.ljust(w) if i == 0 else t.rjust(w)
            for i, (t, w) in enumerate(zip(titles, widths, strict=True))
        )
    ]
    lines.append("-" * len(lines[0]))
    for row in rows:
        lines.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    lines.append(
        "(rates: below 1 means slower than the reference; latency, CPU and RSS:"
        " above 1 means worse. On a busy machine the rates move with the load;"
        " CPU per message much less)"
    )
    return "\n".join(lines)


def legend(results: list[dict]) -> str:
    return "\n".join(
        f"  {r['scenario']} [{r['target']}]: {r['title']} -- {r['description']}"
        for r in results
    )


_SUBSCRIBE_HINT = (
    "subscribing to {topic} was refused: `subscribe invalid_frame` means the"
    " server does not know topics (SPEC §8) yet; `subscribe not_found` that the"
    " namespace does not exist (the bench starts Bridge with"
    " BRIDGE_TOPIC_NAMESPACES=bench:public; a --target server must be started"
    " with it); `subscribe forbidden` that the namespace is not `public`"
)


def problems(results: list[dict], nproc: int | None = None) -> str:
    """Loss, errors, dead servers and log excerpts, for after the table."""
    out = []
    for r in results:
        where = f"{r['scenario']} [{r['target']}]"
        other, measured = r.get("other_cpu_s"), r.get("measured_s")
        if other is not None and measured and other / measured > 0.25:
            out.append(
                f"{where}: other processes used {other / measured:.2f} CPUs during"
                f" the measurement (load average {r.get('load_avg_1m') or 0:.1f}"
                f" on {nproc or '?'} CPUs): the machine was not quiet, figures are"
                " pessimistic and noisy"
            )
        if r.get("skipped"):
            out.append(f"{where}: skipped: {r['skipped']}")
        if r.get("server_dead"):
            out.append(f"{where}: server process exited: {'; '.join(r['server_dead'])}")
        if r.get("connect_failures"):
            out.append(f"{where}: connect failures {r['connect_failures']}")
            topic = r.get("config", {}).get("topic")
            if topic and any(k.startswith("subscribe") for k in r["connect_failures"]):
                out.append(f"    {_SUBSCRIBE_HINT.format(topic=topic)}")
        if r.get("non_202"):
            out.append(f"{where}: non-202 replies {r['non_202']}")
            for status, body in r.get("error_samples", {}).items():
                out.append(f"    {status}: {body}")
        if r.get("lost"):
            out.append(
                f"{where}: {r['lost']} deliveries lost across {r['lost_users']} users"
                f" (e.g. {r['lost_sample']})"
            )
        if r.get("refused_pushes_delivered"):
            out.append(
                f"{where}: {r['refused_pushes_delivered']} of {r['refused_pushes']}"
                " pushes answered non-202 were delivered anyway"
                f" ({sum(r['delivered_despite_error'].values())} deliveries)"
            )
        for key in (
            "duplicates",
            "unexpected",
            "seq_errors",
            "seq_mismatches",
            "parts_out_of_order",
            "parts_wrong_delta",
            "final_before_last_part",
            "part_index_mismatches",
        ):
            if r.get(key):
                out.append(f"{where}: {key} = {r[key]}")
        if r.get("closed_by_server"):
            out.append(f"{where}: connections closed by server {r['closed_by_server']}")
        if r.get("log_excerpt"):
            out.append(
                f"{where}: server log: {r['log_error_lines']} error and"
                f" {r['log_warning_lines']} warning lines; first ones:"
            )
            out.extend("    " + line for line in r["log_excerpt"].splitlines())
    return "\n".join(out)


def write_json(
    path: str | Path, machine: dict, args: dict, results: list[dict]
) -> None:
    Path(path).write_text(
        json.dumps(
            {"machine": machine, "args": args, "results": results},
            indent=2,
            default=str,
        )
        + "\n"
    )
