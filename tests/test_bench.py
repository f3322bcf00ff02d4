"""The benchmark's own pieces (bench/): the reference bridge's streamed messages,
the S7 ledger, the headline table, and S7 end to end at a tiny size."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench import load, markdown, reference, report, scenarios
from bench.run import parse_args, target_factories
from bench.targets import BridgeTarget, ReferenceTarget

TOPIC = "bench:fanout"


@pytest.fixture(autouse=True)
def empty_reference():
    """The reference keeps its state in module globals: start each test empty."""
    for state in (
        reference.connections,
        reference.seqs,
        reference.subscribers,
        reference.topic_seqs,
        reference.streams,
    ):
        state.clear()
    yield


async def _post(path: str, body: dict) -> tuple[int, dict]:
    """One HTTP request straight into the reference's ASGI application."""
    sent: list[dict] = []
    chunks = [{"type": "http.request", "body": json.dumps(body).encode()}]

    async def receive() -> dict:
        return chunks.pop(0)

    async def send(event: dict) -> None:
        sent.append(event)

    scope = {"type": "http", "method": "POST", "path": path}
    await reference.application(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def _subscriber() -> tuple[list[dict], object]:
    frames: list[dict] = []

    async def send(event: dict) -> None:
        frames.append(json.loads(event["text"]))

    return frames, send


async def test_reference_streams_parts_in_order_then_the_whole_message_once():
    inboxes = []
    for _ in range(2):
        frames, send = _subscriber()
        reference.subscribers.setdefault(TOPIC, set()).add(send)
        inboxes.append(frames)
    part = {"topic": TOPIC, "stream_id": "s1", "event": "bench"}

    replies = [await _post("/sse/push", {**part, "delta": d}) for d in ("a", "b")]
    final = await _post(
        "/sse/push", {**part, "delta": "c", "final": True, "data": {"bid": "x"}}
    )

    assert [r for r, _ in replies] == [202, 202]
    assert [body["index"] for _, body in replies] == [0, 1]
    status, body = final
    assert status == 202
    assert body["index"] == 2 and body["final"] is True
    assert body["topic"] == TOPIC and body["seq"] == 1 and body["subscribers"] == 2
    for frames in inboxes:
        parts = [f for f in frames if f["type"] == "stream"]
        assert [(f["index"], f["delta"]) for f in parts] == [
            (0, "a"),
            (1, "b"),
            (2, "c"),
        ]
        assert {f["id"] for f in parts} == {body["id"]}
        assert frames[-1]["type"] == "message"
        assert frames[-1]["stream_id"] == "s1"
        assert frames[-1]["id"] == body["id"]
        assert frames[-1]["data"] == {"bid": "x", "text": "abc"}
        assert len(frames) == 4
    assert reference.streams == {}


async def test_reference_still_delivers_ordinary_pushes_to_users_and_topics():
    frames, send = _subscriber()
    reference.connections["u1"] = {send}
    reference.subscribers[TOPIC] = {send}

    status, body = await _post("/sse/push", {"user_id": "u1", "data": {"k": 1}})
    assert status == 202 and body["recipients"][0]["seq"] == 1
    status, body = await _post("/sse/push", {"topic": TOPIC, "data": {"k": 2}})
    assert status == 202 and body["seq"] == 1 and body["subscribers"] == 1
    status, body = await _post(
        "/sse/push/batch", {"messages": [{"user_id": "u1", "message": "hi"}]}
    )
    assert status == 202 and body["results"][0]["recipients"][0]["seq"] == 2

    assert [(f["type"], f["data"]) for f in frames] == [
        ("message", {"k": 1}),
        ("message", {"k": 2}),
        ("message", {"text": "hi"}),
    ]
    assert all("stream_id" not in f for f in frames)


async def test_reference_refuses_a_streamed_part_in_a_batch_and_bad_parts():
    status, _ = await _post(
        "/sse/push/batch",
        {"messages": [{"topic": TOPIC, "stream_id": "s", "delta": "a"}]},
    )
    assert status == 400
    for bad in (
        {"topic": TOPIC, "stream_id": "s"},  # no delta on a non-final part
        {"topic": TOPIC, "stream_id": "s", "delta": "a", "data": {"k": 1}},
        {"topic": TOPIC, "stream_id": "s", "message": "a"},
        {"topic": TOPIC, "stream_id": "no spaces", "delta": "a"},
    ):
        status, _ = await _post("/sse/push", bad)
        assert status == 400, bad


def _pool_with(entries: list[list[tuple]]) -> load.ClientPool:
    pool = load.ClientPool(["ws://x"], ["u0"], len(entries), topic=TOPIC)
    for conn, streams in zip(pool.conns, entries, strict=True):
        conn.ws = object()  # counts as open
        conn.streams = streams
    return pool


def test_reconcile_streams_counts_loss_duplicates_order_and_early_finals():
    ledger = load.Ledger()
    ledger.stream_parts["s"] = [1.0, 2.0, 3.0]

    def part(index: int, at: float = 5.0) -> tuple:
        sent = ledger.stream_parts["s"][index]
        return ("part", "s", index, f"{index}@{sent:.6f};", at)

    good = [part(0), part(1), part(2), ("final", "s")]
    bad = [part(1), part(0), part(0), ("final", "s"), ("part", "s", 2, "x", 6.0)]
    lossy = [part(0)]
    got = load.reconcile_streams(ledger, _pool_with([good, bad, lossy]))

    assert got.expected == 9
    assert got.delivered == 7
    assert got.lost == 2
    assert got.duplicates == 1
    assert got.out_of_order == 3  # 1 first, 0 after 1, 2 after 0
    assert got.wrong_delta == 1
    assert got.final_early == 1
    assert sorted(got.latencies) == [2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0]


def test_headline_table_has_every_target_and_a_ratio_to_each():
    def result(target: str, rate: float) -> dict:
        return {
            "scenario": "S7",
            "target": target,
            "deliveries_per_s": rate,
            "lost": 0,
            "duplicates": 0,
        }

    text = report.ratios(
        [result("bridge", 100), result("ref-uvicorn", 400), result("ref-daphne", 200)]
    )
    header, _rule, row, losses = text.splitlines()[:4]
    assert header.split() == [
        "figure",
        "bridge",
        "ref-uvicorn",
        "ref-daphne",
        "bridge/ref-uvicorn",
        "bridge/ref-daphne",
    ]
    assert row.split() == ["S7", "deliveries/s", "100", "400", "200", "0.25x", "0.50x"]
    assert losses.split() == ["S7", "lost/duplicates", "0/0", "0/0", "0/0"]


def test_markdown_headline_table_from_a_headline_run():
    def result(target: str, rate: float, cpu: float) -> dict:
        return {
            "scenario": "S7",
            "target": target,
            "deliveries_per_s": rate,
            "server_cpu_s": cpu,
            "parts_delivered": 1000,
            "latency_ms": {"p99": 10.0},
            "rss_per_conn_kb": 20.0,
            "lost": 0,
            "duplicates": 0,
        }

    results = {
        ("S7", r["target"]): r
        for r in (
            result("bridge", 100, 0.4),
            result("ref-uvicorn", 400, 0.1),
            result("ref-daphne", 200, 0.2),
        )
    }
    lines = markdown.headline_table(results).splitlines()
    assert "**bridge / ref-uvicorn**" in lines[0]
    assert lines[2] == (
        "| S7 | deliveries/s | 100 | 400 | 200 | **0.25x** | 0.50x | 2.00x |"
    )
    assert lines[3] == (
        "| S7 | server CPU µs per part delivered | 400.0 | 100.0 | 200.0"
        " | **4.00x** | 2.00x | 0.50x |"
    )
    assert lines[-1] == "| S7 | lost / duplicates | 0/0 | 0/0 | 0/0 | | | |"


def test_default_run_is_bridge_in_production_against_both_references():
    factories = target_factories(parse_args([]))
    targets = [factory() for factory in factories]
    bridge, on_uvicorn, on_daphne = targets
    assert isinstance(bridge, BridgeTarget)
    assert (bridge.server, bridge.config) == ("daphne", "production")
    assert isinstance(on_uvicorn, ReferenceTarget)
    assert (on_uvicorn.name, on_uvicorn.server) == ("ref-uvicorn", "uvicorn")
    assert (on_daphne.name, on_daphne.server) == ("ref-daphne", "daphne")

    old = [f() for f in target_factories(parse_args(["--server", "uvicorn"]))]
    assert [(t.name, t.server) for t in old] == [
        ("bridge", "uvicorn"),
        ("reference", "uvicorn"),
    ]
    assert old[0].config == "dev"


def test_s7_is_listed_with_a_quick_size():
    full, quick = scenarios.build("S7"), scenarios.build("S7", quick=True)
    assert (full.connections, full.stream_parts) == (100, 100)
    assert (quick.connections, quick.stream_parts) == (100, 100)
    assert quick.pushes < full.pushes


def _tiny_s7() -> scenarios.Scenario:
    return scenarios.build("S7", connections=5, pushes=2, concurrency=2)


def _assert_every_part_and_final_arrived(result: dict) -> None:
    assert result["connections_open"] == 5
    assert result["parts_expected"] == 2 * 100 * 5
    assert result["parts_delivered"] == result["parts_expected"]
    assert result["finals_delivered"] == result["finals_expected"] == 2 * 5
    for key in (
        "lost",
        "duplicates",
        "unexpected",
        "parts_out_of_order",
        "parts_wrong_delta",
        "final_before_last_part",
        "part_index_mismatches",
        "seq_mismatches",
    ):
        assert result[key] == 0, key


@pytest.mark.e2e
def test_s7_smoke_against_the_reference():
    options = scenarios.Options(drain_timeout=5, settle=0)
    with ReferenceTarget(server="daphne") as target:
        result = asyncio.run(scenarios.run(target, _tiny_s7(), options))
    _assert_every_part_and_final_arrived(result)


@pytest.mark.e2e
def test_s7_smoke_against_bridge_in_production_config():
    """DEBUG=0, token mode: pushes with the API key, sockets with tokens."""
    scenario = _tiny_s7()
    options = scenarios.Options(drain_timeout=5, settle=0)
    target = BridgeTarget(
        config="production", extra_env=scenarios.server_env([scenario])
    )
    with target:
        assert target.api_key
        assert target.ws_query(["u1"])["u1"].startswith("token=")
        result = asyncio.run(scenarios.run(target, scenario, options))
    _assert_every_part_and_final_arrived(result)
