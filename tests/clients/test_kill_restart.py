"""The client survives its server process being killed (SPEC §5, §11).

Two daphne processes, A and B, share Redis and the database. A `bridge_client`
connected to A records every message its handler gets (the ledger); a raw
`LedgerClient` on B records the same user's messages as a control. 1,000 pushes
go through B while A is SIGKILLed and started again on the same port. The client
sees 1006, reconnects with backoff, resumes with `last_seq`, and its handler gets
every accepted push exactly once, in seq order.

Run alone, with the figures: `.venv/bin/pytest tests/clients/test_kill_restart.py -s`
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge_client import AsyncBridgeHTTP, Client, Message, State, StateChange
from bridge_project.embedded_redis import EmbeddedRedis
from tests.clients.conftest import SERVER_ENV
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.ledger import LedgerClient, Received
from tests.support.polling import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

PUSHES = 1000
CONCURRENCY = 8
KILL_AFTER_PUSHES = 150
DOWN_SECONDS = 1.0


@pytest.fixture
def pair(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path: Path
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    with running_daphnes(
        redis_server.url, tmp_path, 2, database=migrated_sqlite, **SERVER_ENV
    ) as (a, b):
        yield a, b


@pytest.fixture(autouse=True)
def quiet_httpx(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="httpx")


@dataclass
class Ledger:
    """What the application's handler was given, and the connection's story."""

    received: list[Received] = field(default_factory=list)
    states: list[tuple[float, StateChange]] = field(default_factory=list)

    def on_message(self, message: Message) -> None:
        marker = message.data.get("marker") if isinstance(message.data, dict) else None
        self.received.append(Received(message.seq, marker, time.monotonic()))

    def on_state(self, change: StateChange) -> None:
        self.states.append((time.monotonic(), change))

    def connected_after(self, moment: float) -> float | None:
        return next(
            (
                at
                for at, change in self.states
                if at >= moment and change.state is State.CONNECTED
            ),
            None,
        )


async def _push_all(
    http: AsyncBridgeHTTP, user: str, replies: dict[str, int], at: dict[str, float]
) -> None:
    markers = iter(f"m{n}" for n in range(PUSHES))

    async def worker() -> None:
        for marker in markers:
            reply = await http.push(user_id=user, data={"marker": marker})
            replies[marker] = reply["recipients"][0]["seq"]
            at[marker] = time.monotonic()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def test_server_killed_and_restarted_under_1000_pushes_loses_and_repeats_nothing(
    pair,
):
    a, b = pair
    user = fresh_user_id("kill")
    ledger = Ledger()
    client = Client(a.ws, user_id=user)
    client.on("message", ledger.on_message)
    client.on("state", ledger.on_state)
    control = await LedgerClient.open(b.ws, user, "control@B", last_seq=0)
    replies: dict[str, int] = {}
    accepted_at: dict[str, float] = {}
    await client.connect()
    try:
        async with AsyncBridgeHTTP(b.http) as http:
            pushing = asyncio.create_task(_push_all(http, user, replies, accepted_at))
            await eventually(
                lambda: _at_least(replies, KILL_AFTER_PUSHES), within=30, every=0.01
            )
            killed_at = time.monotonic()
            await asyncio.to_thread(a.stop, kill=True)
            await asyncio.sleep(DOWN_SECONDS)
            await asyncio.to_thread(a.start)
            back_at = time.monotonic()
            await pushing
        expected = set(replies)

        def everything_arrived() -> None:
            assert {r.marker for r in ledger.received} >= expected
            assert {m.marker for m in control.messages} >= expected

        await eventually(everything_arrived, within=30)
        await asyncio.sleep(1.0)  # room for a late duplicate to show up
    finally:
        await client.close()
        await control.close()

    markers = [r.marker for r in ledger.received]
    counts = Counter(markers)
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    lost = len(expected - set(markers))
    seqs = [r.seq for r in ledger.received]
    reconnected_at = ledger.connected_after(killed_at)
    assert reconnected_at is not None, ledger.states
    while_down = sum(1 for t in accepted_at.values() if killed_at <= t < reconnected_at)
    print(
        f"\nCLIENT KILL-RESTART LEDGER: pushes={PUSHES} accepted={len(replies)} "
        f"delivered={len(markers)} lost={lost} duplicated={duplicated} "
        f"accepted_while_disconnected={while_down} "
        f"connections={_count_state(ledger, State.CONNECTED)} "
        f"reconnect_attempts={client.reconnects} "
        f"server_down_for={back_at - killed_at:.2f}s "
        f"kill_to_resumed={reconnected_at - killed_at:.2f}s "
        f"restart_ready_to_resumed={max(0.0, reconnected_at - back_at):.2f}s "
        f"duplicates_filtered={client.stats['duplicates_dropped']} "
        f"control_delivered={len(control.messages)}"
    )
    assert len(replies) == PUSHES
    assert lost == 0
    assert duplicated == 0
    assert seqs == sorted(replies.values()), "not every seq, or not in seq order"
    assert seqs == list(range(1, PUSHES + 1))
    # The control saw the same: the server delivered them, the client resumed.
    assert [m.seq for m in control.messages] == seqs
    assert client.reconnects >= 1
    assert _count_state(ledger, State.CONNECTED) == 2  # one drop, one resume
    # The kill was a drop (1006), not a clean close.
    closes = [c.code for _, c in ledger.states if c.state is State.DISCONNECTED]
    assert closes[0] == 1006, closes
    assert client.positions.personal == PUSHES
    assert while_down > 0, "no push fell in the outage: the test proved nothing"


def _count_state(ledger: Ledger, state: State) -> int:
    return sum(1 for _, change in ledger.states if change.state is state)


def _at_least(replies: dict[str, int], count: int) -> None:
    assert len(replies) >= count
