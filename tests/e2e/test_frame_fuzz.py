"""Generated hostile frames against a live daphne (SPEC §2, §8, §11; issue 12).

Random JSON, wrong types, huge numbers, deep nesting, control characters,
invalid UTF-8, binary frames, fragments cut anywhere (mid-character too) and
RFC 6455 violations, written with a raw socket (tests/support/raw_ws.py);
and SPEC §8's topic frames (subscribe, unsubscribe, message with `topic`) with
valid and hostile topic names, in namespaces the server has and has not.
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
from tests.support.frame_oracle import (
    FUZZ_NAMESPACES,
    MAX_REF_CHARS,
    MAX_SUBSCRIPTIONS,
    Subscriptions,
    expected_for,
)
from tests.support.logs import assert_no_crash
from tests.support.polling import eventually
from tests.support.raw_ws import RawWebSocket, ServerClosed
from tests.support.topics import create_topics

pytestmark = pytest.mark.e2e

# SPEC §2: the 20th refused frame within 60 s closes with 4400. The fuzzer
# opens a fresh connection before that, so every refusal gets its error frame.
REFUSALS_PER_CONNECTION = 15
HANDSHAKE_ATTEMPTS = 5
# Divergences this fuzzer found and that are fixed; the switches stay so that
# a regression can be looked at with the old tolerance. Off means strict:
# - a connection got copies of its own topic messages from the store when it
#   subscribed again (or filled a gap) before their live events arrived;
OWN_COPIES_TOLERATED = False
# - errors left out a `topic` string longer than 161 characters.
LONGEST_TOPIC = 10**9


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
        BRIDGE_MAX_SUBSCRIPTIONS=str(MAX_SUBSCRIPTIONS),
    ) as (server,):
        # The namespaces the oracle knows (SPEC §8), made as an operator would.
        create_topics(server.env, FUZZ_NAMESPACES)
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
    codes: Counter = field(default_factory=Counter)  # error codes seen
    replayed: int = 0  # topic messages replayed after `subscribe` with `since`
    lenient: int = 0  # outcomes only frame_oracle.LENIENT_NEWLINE allows
    own_copies: int = 0  # see OWN_COPIES_TOLERATED


class Session:
    """One fuzzed connection: the socket and the refusals it has had."""

    def __init__(self, socket: RawWebSocket) -> None:
        self.socket = socket
        self.refusals = 0
        self.held: set[str] = set()  # topics subscribed (SPEC §8)
        self.published: set[str] = set()  # ids of its acked topic messages
        # This connection's topic frames so far, for failure messages: a
        # topic frame's outcome depends on what came before it.
        self.topic_history: list[str] = []

    @property
    def subscriptions(self) -> Subscriptions:
        return Subscriptions(frozenset(self.held))


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


def is_topic_delivery(frame: dict) -> bool:
    """A topic's message or history_truncated (SPEC §8), not a reply."""
    return frame["type"] in ("message", "history_truncated") and "topic" in frame


async def send_case(
    session: Session, case: Case, probe: str, topic_frames: list[dict]
) -> tuple[str, list[dict], dict | None]:
    """Write the case, then (unless it may close) a `ping` probe; returns the
    case's outcome, the frames it got and the probe's reply (None without one).
    Topic deliveries (a replay after `subscribe`) go to `topic_frames`.

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
            if is_topic_delivery(frame):
                topic_frames.append(frame)
                continue
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
        expected = case.expected_on(session.subscriptions)
        strict = expected
        if case.frame is not None:
            strict = expected_for(
                case.frame, session.subscriptions, lenient_newline=False
            )
        topic_frames: list[dict] = []
        outcome, replies, probe_reply = await send_case(
            session, case, f"probe-{index}", topic_frames
        )
        run.outcomes[outcome.split(":")[0]] += 1
        if outcome.startswith("error:"):
            run.codes[outcome.split(":", 1)[1]] += 1
        run.lenient += outcome in expected - strict
        if OWN_COPIES_TOLERATED and not is_replay(case, outcome):
            own = [f for f in topic_frames if f.get("id") in session.published]
            run.own_copies += len(own)
            topic_frames = [f for f in topic_frames if f not in own]
        problem = None
        if outcome not in expected:
            problem = f"expected one of {sorted(expected)}, got {outcome}"
        elif wrong := (
            (replies and topic_reply_problem(case, outcome, replies[0]))
            or delivery_problem(case, outcome, topic_frames)
        ):
            problem = wrong
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
        if outcome == "subscribed":
            session.held.add(replies[0]["topic"])
            run.replayed += len(topic_frames)
        elif outcome == "unsubscribed":
            session.held.discard(replies[0]["topic"])
        elif outcome == "ack" and case.topic is not None:
            session.published.add(replies[0]["id"])
        if problem:
            history = "".join(f"\n    {line}" for line in session.topic_history[-30:])
            run.failures.append(
                f"seed {run.seed} case {index} ({case.kind}): {case.note}\n"
                f"  {problem}; frames {replies[:3]}"
                + (
                    f"\n  after this connection's topic frames:{history}"
                    if history
                    else ""
                )
            )
        if case.frame is not None:
            session.topic_history.append(f"case {index}: {case.note} -> {outcome}")
        if outcome.startswith(("close:", "drop")):
            await session.socket.close()
            session = await open_session(run)
    await session.socket.close()


def _valid_ref(ref: object) -> bool:
    return isinstance(ref, str) and len(ref) <= MAX_REF_CHARS


def _as_parsed(value: object) -> object:
    """A generated string as the server parses it: an escaped surrogate pair
    ("\\ud800\\udc00") is one character once parsed."""
    if not isinstance(value, str):
        return value
    return value.encode("utf-16-le", "surrogatepass").decode(
        "utf-16-le", "surrogatepass"
    )


def topic_reply_problem(case: Case, outcome: str, reply: dict) -> str | None:
    """The fields SPEC §8 gives `subscribed`, `unsubscribed`, a topic `ack`
    and the errors of subscribe/unsubscribe; None when they are right."""
    frame = case.frame if isinstance(case.frame, dict) else {}
    kind, topic, ref = frame.get("type"), _as_parsed(case.topic), _as_parsed(case.ref)
    if outcome == "subscribed":
        namespace = FUZZ_NAMESPACES.get(str(reply.get("topic")).split(":")[0], {})
        live_only = namespace.get("history_size") == 0
        seq = reply.get("seq")
        seq_ok = seq is None if live_only else isinstance(seq, int) and seq >= 0
        recovered_ok = isinstance(reply.get("recovered"), bool) and (
            reply["recovered"] or frame.get("since") is not None
        )
        if reply.get("topic") != topic or reply.get("ref") != ref:
            return f"`subscribed` names another topic or ref: {reply}"
        if not seq_ok or not recovered_ok:
            return f"`subscribed` has a wrong seq or recovered: {reply}"
    elif outcome == "unsubscribed":
        if (reply.get("topic"), reply.get("ref"), reply.get("reason")) != (
            topic,
            ref,
            "client",
        ):
            return f"`unsubscribed` should carry topic, ref, reason client: {reply}"
    elif outcome == "ack" and topic is not None:
        seq = reply.get("seq")
        if reply.get("topic") != topic or not (isinstance(seq, int) and seq >= 1):
            return f"a topic's `ack` should carry topic and seq: {reply}"
    elif (
        outcome.startswith("error:")
        and kind in ("subscribe", "unsubscribe")
        and _valid_ref(ref)
        and outcome != "error:invalid_json"
    ):
        # SPEC §8: errors for subscribe/unsubscribe carry the frame's ref and
        # topic (a topic that is not even a string cannot be echoed).
        if reply.get("ref") != ref:
            return f"the error should carry the frame's ref: {reply}"
        echoed = "topic" in reply or len(str(topic)) <= LONGEST_TOPIC
        if isinstance(topic, str) and echoed and reply.get("topic") != topic:
            return f"the error should carry the frame's topic: {reply}"
    return None


def is_replay(case: Case, outcome: str) -> bool:
    """A `subscribe` with `since` that was answered `subscribed` (SPEC §8)."""
    frame = case.frame if isinstance(case.frame, dict) else {}
    return outcome == "subscribed" and frame.get("since") is not None


def delivery_problem(case: Case, outcome: str, topic_frames: list[dict]) -> str | None:
    """Topic messages reach this connection only as a replay right after its
    `subscribed` with `since`: it is the only connection of its user, and
    SPEC §8 gives the publishing connection no copy of its own messages."""
    if not topic_frames:
        return None
    frame = case.frame if isinstance(case.frame, dict) else {}
    if not is_replay(case, outcome):
        return f"unexpected topic frames {topic_frames[:2]}"
    if any(delivery.get("topic") != case.topic for delivery in topic_frames):
        return f"a replay from another topic: {topic_frames[:2]}"
    seqs = [d["seq"] for d in topic_frames if d["type"] == "message"]
    if seqs != sorted(set(seqs)) or any(seq <= frame["since"] for seq in seqs):
        return f"a replay out of order or not after `since`: {seqs[:10]}"
    return None


async def assert_nobody_left_online(server: DaphneProcess, users: set[str]) -> None:
    """Every fuzzed connection, dropped ones too, left presence and its
    topics' subscriptions (no leak)."""
    async with httpx.AsyncClient(timeout=10) as http:

        async def check() -> None:
            reply = await http.get(f"{server.http}/api/users/online?limit=1000")
            assert reply.status_code == 200, reply.text
            online = {entry["user_id"] for entry in reply.json()["users"]}
            assert not online & users, sorted(online & users)[:10]
            for namespace in FUZZ_NAMESPACES:
                reply = await http.get(
                    f"{server.http}/api/topics?namespace={namespace}&limit=100"
                )
                assert reply.status_code == 200, reply.text
                held = [t for t in reply.json()["topics"] if t["subscribers"]]
                assert not held, held[:10]

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
        f"{run.pongs_after_refusal} pongs right after a refusal; "
        f"error codes {dict(run.codes)}; {run.replayed} topic messages replayed; "
        f"{run.lenient} outcomes only the lenient-newline reading allows; "
        f"{run.own_copies} copies of the connection's own topic messages"
    )
    assert not run.failures, "\n".join(run.failures[:20])
    # The fuzzer reached every kind of outcome, so the oracle was exercised.
    assert {
        "error",
        "pong",
        "silent",
        "ack",
        "close",
        "drop",
        "subscribed",
        "unsubscribed",
    } <= set(run.outcomes)
    assert {"invalid_frame", "not_found", "forbidden"} <= set(run.codes)
    assert run.pongs_after_refusal > 0
    await assert_nobody_left_online(fuzz_server, run.users)
    assert fuzz_server.process is not None and fuzz_server.process.poll() is None
    assert_no_crash(fuzz_server.log(since=mark))
