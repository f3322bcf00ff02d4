"""SIGTERM drains a process: clients are sent elsewhere, nothing is lost (SPEC §11).

Two daphne processes, A and B, share Redis and the database. Users have one
connection on each; pushes go to both processes at a steady rate; one push to A
is in flight (its body half sent) when A gets SIGTERM. Then:

- every client of A gets `error` `going_away` with `retry_after_ms`, then close
  1001, and after the hint reconnects to B with `last_seq`;
- every push answered 202 reaches every connection of its user exactly once
  (the first connection and the resumed one together), in seq order; a push that
  got no 202 was refused before it was accepted (connection refused or closed
  unanswered) and reached nobody;
- the in-flight push is answered 202 with `Connection: close`;
- A drains completely and exits 0 within BRIDGE_SHUTDOWN_GRACE, and right after,
  B's presence no longer lists A or A's connections (their entries would
  otherwise live two heartbeat intervals);
- neither log has a crash.

And a process whose drain cannot finish (a request body that never completes)
still exits within the grace, closing what is left; an idle keep-alive
connection is closed at once; and `make run`
(bridge_project/serve.py) passes SIGTERM on so that its daphne drains too.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis, free_port
from tests.support.cluster import instance_name
from tests.support.daphne import REPO, DaphneProcess, running_daphnes, server_env
from tests.support.ids import fresh_user_id
from tests.support.ledger import LedgerClient
from tests.support.logs import assert_no_crash
from tests.support.polling import eventually
from tests.support.ws import connect_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

USERS = 12
PUSHES_PER_SECOND = 20
PUSHING_SECONDS = 8.0
TERM_AFTER_SECONDS = 2.0
GRACE_SECONDS = 10.0
# Entries live two intervals (6 s): long enough that A's would still be listed
# right after it exits, unless it removed them.
HEARTBEAT = {"BRIDGE_HEARTBEAT_INTERVAL": "3", "BRIDGE_HEARTBEAT_TIMEOUT": "30"}
CONVERGENCE_SECONDS = 10.0
# Transport errors that mean "not accepted": nothing was stored.
REFUSED = (
    httpx.ConnectError,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)


@dataclass
class MakeRun:
    process: subprocess.Popen
    port: int
    log_path: Path


@dataclass
class PushRecord:
    marker: str
    user_id: str
    to_a: bool
    status: int | str | None = None


@dataclass
class Roamer:
    """A client of A: its first connection, then the one it resumed on B."""

    first: LedgerClient
    going_away: dict | None = None
    resumed: LedgerClient | None = None
    resumed_from: int | None = None

    @property
    def user_id(self) -> str:
        return self.first.user_id

    def markers(self) -> list:
        later = self.resumed.markers() if self.resumed else []
        return self.first.markers() + later

    def seqs(self) -> list:
        later = self.resumed.seqs() if self.resumed else []
        return self.first.seqs() + later

    async def roam(self, b: DaphneProcess) -> None:
        """Wait for A to send this client away; follow the hint to B."""
        await self.first.ended()
        errors = [f for f in self.first.others if f.get("type") == "error"]
        self.going_away = errors[-1] if errors else None
        if self.first.closed != 1001 or self.going_away is None:
            return  # the test reports it
        await asyncio.sleep(self.going_away["retry_after_ms"] / 1000)
        seqs = self.first.seqs()
        self.resumed_from = seqs[-1] if seqs else self.first.connected["last_seq"]
        self.resumed = await LedgerClient.open(
            b.ws,
            self.user_id,
            f"{self.first.label}/resumed",
            last_seq=self.resumed_from,
        )


@pytest.fixture
def pair(
    redis_server: EmbeddedRedis, migrated_sqlite: Path, tmp_path: Path
) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    with running_daphnes(
        redis_server.url, tmp_path, 2, database=migrated_sqlite, **HEARTBEAT
    ) as processes:
        yield processes


async def _push(http: httpx.AsyncClient, server: DaphneProcess, record: PushRecord):
    body = {"user_id": record.user_id, "data": {"marker": record.marker}}
    try:
        reply = await http.post(f"{server.http}/sse/push", json=body)
    except REFUSED as error:
        record.status = f"refused: {type(error).__name__}"
    except httpx.HTTPError as error:
        record.status = f"transport error: {type(error).__name__}"
    else:
        record.status = reply.status_code


async def _push_steadily(
    a: DaphneProcess, b: DaphneProcess, users: list[str], records: list[PushRecord]
) -> None:
    rng = random.Random(20261203)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    async with httpx.AsyncClient(timeout=15, limits=limits) as http:
        tasks = []
        started = time.monotonic()
        n = 0
        while (now := time.monotonic()) < started + PUSHING_SECONDS:
            record = PushRecord(f"m{n}", rng.choice(users), to_a=n % 2 == 0)
            records.append(record)
            server = a if record.to_a else b
            tasks.append(asyncio.create_task(_push(http, server, record)))
            n += 1
            await asyncio.sleep(max(0.0, started + n / PUSHES_PER_SECOND - now))
        await asyncio.gather(*tasks)


async def _slow_push(
    server: DaphneProcess, user_id: str, marker: str, release: asyncio.Event
) -> httpx.Response:
    """A push whose body stops halfway until `release` is set."""
    body = json.dumps({"user_id": user_id, "data": {"marker": marker}}).encode()
    half = len(body) // 2

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:half]
        await release.wait()
        yield body[half:]

    async with httpx.AsyncClient(timeout=15) as http:
        return await http.post(
            f"{server.http}/sse/push",
            content=chunks(),
            headers={
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
            },
        )


async def _listed_instances(http: httpx.AsyncClient, server: DaphneProcess) -> set:
    stats = (await http.get(f"{server.http}/api/stats")).json()
    return {entry["instance"] for entry in stats["instances"]}


async def _connection_instances(
    http: httpx.AsyncClient, server: DaphneProcess, user_id: str
) -> list[str]:
    reply = await http.get(f"{server.http}/api/users/{user_id}/connections")
    return [c["instance"] for c in reply.json()["connections"]]


async def test_sigterm_sends_clients_elsewhere_and_loses_nothing(pair, http):
    a, b = pair
    a_name = instance_name(a)
    users = [fresh_user_id("leaving") for _ in range(USERS)]
    roamers = [Roamer(await LedgerClient.open(a.ws, u, f"{u}@A")) for u in users]
    stayers = [await LedgerClient.open(b.ws, u, f"{u}@B") for u in users]
    try:

        async def a_is_listed() -> None:
            assert a_name in await _listed_instances(http, b)
            assert a_name in await _connection_instances(http, b, users[0])

        await eventually(a_is_listed, within=10)

        records: list[PushRecord] = []
        roaming = [asyncio.create_task(r.roam(b)) for r in roamers]
        pushing = asyncio.create_task(_push_steadily(a, b, users, records))
        await asyncio.sleep(TERM_AFTER_SECONDS)
        release = asyncio.Event()
        in_flight = asyncio.create_task(_slow_push(a, users[0], "in-flight", release))
        await asyncio.sleep(1.0)  # its headers and half its body reach A
        a.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)  # A is draining while the body is incomplete
        release.set()
        reply = await in_flight
        assert reply.status_code == 202, reply.text
        assert reply.headers.get("connection") == "close"
        records.append(PushRecord("in-flight", users[0], to_a=True, status=202))

        exit_code = await asyncio.to_thread(a.process.wait, GRACE_SECONDS)
        assert exit_code == 0
        # Everything finished: nothing (an idle keep-alive connection, say) was
        # left for the grace to cut off.
        assert "shutting down: drained after" in a.log()
        # Right after A exits, not after its entries expire.
        assert a_name not in await _listed_instances(http, b)
        for user_id in users:
            assert a_name not in await _connection_instances(http, b, user_id)

        await pushing
        await asyncio.gather(*roaming)
        for roamer in roamers:
            assert roamer.first.closed == 1001, (roamer.user_id, roamer.first.closed)
            frame = roamer.going_away
            assert frame is not None and frame["code"] == "going_away", frame
            assert isinstance(frame["retry_after_ms"], int)
            assert 0 <= frame["retry_after_ms"] <= GRACE_SECONDS * 1000
            assert roamer.resumed is not None

        accepted = [r for r in records if r.status == 202]
        others = [r for r in records if r.status != 202]
        assert len(accepted) > PUSHES_PER_SECOND * TERM_AFTER_SECONDS
        assert all(str(r.status).startswith("refused") for r in others), others
        assert all(r.to_a for r in others), "B refused a push"
        expected: dict[str, set[str]] = {u: set() for u in users}
        for record in accepted:
            expected[record.user_id].add(record.marker)
        ledgers = [*roamers, *stayers]

        def everyone_has_everything() -> None:
            missing = {
                f"{c.user_id}:{type(c).__name__}": expected[c.user_id]
                - set(c.markers())
                for c in ledgers
                if expected[c.user_id] - set(c.markers())
            }
            assert not missing, missing

        await eventually(everyone_has_everything, within=CONVERGENCE_SECONDS)
        refused = {r.marker for r in others}
        for client in ledgers:
            markers = client.markers()
            assert len(markers) == len(set(markers)), f"duplicates for {client}"
            assert not refused & set(markers), "a refused push was delivered"
            seqs = client.seqs()
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        assert all(s.open_now for s in stayers)
    finally:
        for roamer in roamers:
            await roamer.first.close()
            if roamer.resumed is not None:
                await roamer.resumed.close()
        for client in stayers:
            await client.close()
    assert_no_crash(a.log())
    assert_no_crash(b.log())


async def test_a_drain_that_cannot_finish_still_exits_within_the_grace(
    daphne_factory, http
):
    grace = 3.0
    server = daphne_factory(BRIDGE_SHUTDOWN_GRACE=str(grace))
    client, _ = await connect_user(server.ws, fresh_user_id("stuck"))
    # A request whose body never completes keeps the drain from finishing.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /sse/push HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user_id"'
    )
    await writer.drain()
    await asyncio.sleep(0.5)  # A has read the headers
    try:
        server.process.send_signal(signal.SIGTERM)
        going_away = await client.receive_type("error")
        assert going_away["code"] == "going_away"
        assert await client.close_code() == 1001
        exit_code = await asyncio.to_thread(server.process.wait, grace)
        assert exit_code == 0
        # The stalled request was closed, unanswered.
        try:
            unanswered = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:
            unanswered = b""
        assert unanswered == b""
    finally:
        writer.close()
        await client.close()
    log = server.log()
    assert "still open after the shutdown grace" in log
    assert_no_crash(log)


async def test_an_idle_keep_alive_connection_is_closed_at_once(daphne_factory):
    server = daphne_factory()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        # Idle now, kept alive for a next request that will not come.
        server.process.send_signal(signal.SIGTERM)
        assert await reader.read() == b"", "closed without another byte"
        assert await asyncio.to_thread(server.process.wait, GRACE_SECONDS) == 0
    finally:
        writer.close()
    # Not held open until the grace ran out.
    assert "shutting down: drained after" in server.log()


@pytest.fixture
def make_run(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[MakeRun]:
    """`python -m bridge_project.serve` (what `make run` runs) on a free port."""
    port = free_port()
    env = server_env(redis_server.url, f"sqlite:///{tmp_path / 'serve.sqlite3'}")
    log_path = tmp_path / "serve.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge_project.serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its daphne too is killed if the test fails
        )
    yield MakeRun(process, port, log_path)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


async def test_make_run_passes_sigterm_on_and_its_daphne_drains(make_run, http):
    base = f"127.0.0.1:{make_run.port}"

    async def serving() -> None:
        try:
            reply = await http.get(f"http://{base}/health")
        except httpx.HTTPError as error:
            raise AssertionError(f"not serving: {error!r}") from error
        assert reply.status_code == 200

    await eventually(serving, within=60, every=0.2)
    client, _ = await connect_user(f"ws://{base}", fresh_user_id("run"))
    make_run.process.send_signal(signal.SIGTERM)
    going_away = await client.receive_type("error")
    assert going_away["code"] == "going_away"
    assert await client.close_code() == 1001
    assert await asyncio.to_thread(make_run.process.wait, 30) == 0
    assert_no_crash(make_run.log_path.read_text())
