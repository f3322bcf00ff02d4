"""Generated hostile frames against a live daphne (SPEC §2, §11; issue 12).

Random JSON, wrong types, huge numbers, deep nesting, control characters,
invalid UTF-8, binary frames, fragments cut anywhere (mid-character too) and
RFC 6455 violations, written with a raw socket (tests/support/raw_ws.py).
Each frame must get one of the outcomes SPEC allows for it
(tests/support/frame_fuzz.py, `expected_for`), after a refused frame the
connection still answers `ping` with `pong`, and daphne logs no traceback.

`make test` runs a few hundred frames; `make fuzz` (`pytest -m fuzz`) runs
the nightly size. A failure names the seed and the case's index.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.frame_fuzz import Case, FrameFuzzer
from tests.support.logs import assert_no_crash
from tests.support.polling import eventually
from tests.support.raw_ws import RawWebSocket, ServerClosed

pytestmark = pytest.mark.e2e

# SPEC §2: the 20th refused frame within 60 s closes with 4400. The fuzzer
# opens a fresh connection before that, so every refusal gets its error frame.
REFUSALS_PER_CONNECTION = 15
HANDSHAKE_ATTEMPTS = 5


@pytest.fixture(scope="module")
def fuzz_server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("frame-fuzz"),
        1,
        database=migrated_sqlite,
    ) as (server,):
        yield server


@dataclass
class Run:
    base_ws: str
    seed: int
    outcomes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    pongs_after_refusal: int = 0
    connections: int = 0
    users: set[str] = field(default_factory=set)


class Session:
    """One fuzzed connection: the socket and the refusals it has had."""

    def __init__(self, socket: RawWebSocket) -> None:
        self.socket = socket
        self.refusals = 0


async def open_session(run: Run) -> Session:
    """A connected socket for a fresh user (so per-user limits never add up)."""
    for _attempt in range(HANDSHAKE_ATTEMPTS):
        run.connections += 1
        user = f"fuzz{run.seed}-{run.connections}"
        socket = await RawWebSocket.connect(f"{run.base_ws}/ws?user_id={user}")
        first = await socket.receive()
        if first["type"] == "connected":
            run.users.add(user)
            return Session(socket)
        # Handshake rate limits (4429 rate_limited, SPEC §11) are being added
        # while this is written: wait as told and try again.
        assert first.get("code") == "rate_limited", first
        await socket.close()
        await asyncio.sleep(min(first.get("retry_after_ms", 1000), 5000) / 1000)
    raise AssertionError(f"no handshake admitted in {HANDSHAKE_ATTEMPTS} attempts")


async def send_case(
    session: Session, case: Case, probe: str
) -> tuple[str, list[dict], dict | None]:
    """Write the case, then (unless it may close) a `ping` probe; returns the
    case's outcome, the frames it got and the probe's reply (None without one).

    The consumer answers frames in arrival order, so the case's reply (if
    any) comes before the probe's `pong`. A case that may itself answer
    `pong` (a ping) is owed the first one. Without a probe, the case's
    outcome is its first frame or the close."""
    socket = session.socket
    await socket.send_raw(case.wire)
    probing = not case.may_close
    if probing:
        await socket.send_text(f'{{"type": "ping", "ref": "{probe}"}}')
    may_pong = "pong" in case.expected
    replies: list[dict] = []
    try:
        while True:
            frame = await socket.receive()
            if frame["type"] == "ping":
                continue  # the server's heartbeat
            replies.append(frame)
            case_answered = len(replies) > 1 or not may_pong
            if not probing or frame.get("ref") == probe:
                break
            if frame["type"] == "pong" and case_answered:
                break
    except ServerClosed as closed:
        outcome = "drop" if closed.code is None else f"close:{closed.code}"
        return outcome, replies, None
    probe_reply = replies.pop() if probing else None
    session.refusals += sum(frame["type"] == "error" for frame in replies)
    if probe_reply is not None and probe_reply["type"] == "error":
        session.refusals += 1
    if len(replies) > 1:
        return "several replies", replies, probe_reply
    if not replies:
        return "silent", replies, probe_reply
    reply = replies[0]
    if reply["type"] == "error":
        return f"error:{reply['code']}", replies, probe_reply
    return reply["type"], replies, probe_reply


async def fuzz(run: Run, count: int) -> None:
    session = await open_session(run)
    for index, case in enumerate(FrameFuzzer(run.seed).cases(count)):
        if session.refusals >= REFUSALS_PER_CONNECTION:
            await session.socket.close()
            session = await open_session(run)
        outcome, replies, probe_reply = await send_case(
            session, case, probe=f"probe-{index}"
        )
        run.outcomes[outcome.split(":")[0]] += 1
        problem = None
        if outcome not in case.expected:
            problem = f"expected one of {sorted(case.expected)}, got {outcome}"
        elif probe_reply is not None and probe_reply["type"] != "pong":
            # SPEC §2: after a refused frame the connection stays open; pings
            # may be answered rate_limited once ping floods are limited.
            if (probe_reply["type"], probe_reply.get("code")) != (
                "error",
                "rate_limited",
            ):
                problem = f"the ping after it got {probe_reply}"
        elif outcome.startswith("error:") and probe_reply is not None:
            run.pongs_after_refusal += 1
        if problem:
            run.failures.append(
                f"seed {run.seed} case {index} ({case.kind}): {case.note}\n"
                f"  {problem}; frames {replies[:3]}"
            )
        if outcome.startswith(("close:", "drop")):
            await session.socket.close()
            session = await open_session(run)
    await session.socket.close()


async def assert_nobody_left_online(server: DaphneProcess, users: set[str]) -> None:
    """Every fuzzed connection, dropped ones too, left presence (no leak)."""
    async with httpx.AsyncClient(timeout=10) as http:

        async def check() -> None:
            reply = await http.get(f"{server.http}/api/users/online?limit=1000")
            assert reply.status_code == 200, reply.text
            online = {entry["user_id"] for entry in reply.json()["users"]}
            assert not online & users, sorted(online & users)[:10]

        await eventually(check, within=15)


@pytest.mark.parametrize(
    ("seed", "count"),
    [
        pytest.param(1, 300, id="300-frames"),
        pytest.param(2026, 2500, id="2500-frames", marks=pytest.mark.fuzz),
    ],
)
@pytest.mark.timeout(600)
async def test_generated_frames_get_spec_replies_and_no_crash(
    fuzz_server: DaphneProcess, seed: int, count: int
) -> None:
    mark = fuzz_server.log_size()
    run = Run(fuzz_server.ws, seed)
    started = time.monotonic()
    await fuzz(run, count)
    elapsed = time.monotonic() - started
    print(
        f"\nframe fuzz: seed {seed}, {count} frames over {run.connections} "
        f"connections in {elapsed:.1f}s; outcomes {dict(run.outcomes)}; "
        f"{len(run.failures)} failures; "
        f"{run.pongs_after_refusal} pongs right after a refusal"
    )
    assert not run.failures, "\n".join(run.failures[:20])
    # The fuzzer reached every kind of outcome, so the oracle was exercised.
    assert {"error", "pong", "silent", "ack", "close", "drop"} <= set(run.outcomes)
    assert run.pongs_after_refusal > 0
    await assert_nobody_left_online(fuzz_server, run.users)
    assert fuzz_server.process is not None and fuzz_server.process.poll() is None
    assert_no_crash(fuzz_server.log(since=mark))
