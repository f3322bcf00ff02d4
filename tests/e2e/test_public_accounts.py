"""Public accounts end to end (SPEC §1, §2): bots reached by @mention, over real daphne.

Most tests share one daphne (`bridge`) whose database had `notification_bot`
deactivated before daphne started: daphne caches active handles for a few
seconds, so changing them under a running process would make the tests racy.
Bots have fixed user ids, so every test connects them live-only (no `last_seq`)
and closes them before it ends.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.daphne import DaphneProcess, migrate, server_env
from tests.support.ws import Client, connect_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

FRAME_TIMEOUT = 5.0  # a frame that should come comes well within this
SILENCE = 1.0  # how long "receives nothing" waits


# --- helpers --------------------------------------------------------------------------


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sqlite_path(env: dict[str, str]) -> Path:
    return Path(env["DATABASE_URL"].removeprefix("sqlite:///"))


def account_row(env: dict[str, str], handle: str) -> tuple[str, int] | None:
    with sqlite3.connect(sqlite_path(env)) as db:
        return db.execute(
            "SELECT handle, is_active FROM accounts_publicaccount WHERE handle = ?",
            (handle,),
        ).fetchone()


def deactivate(env: dict[str, str], handle: str) -> None:
    """Deactivate an account in the database file, before any daphne reads it."""
    with sqlite3.connect(sqlite_path(env)) as db:
        changed = db.execute(
            "UPDATE accounts_publicaccount SET is_active = 0 WHERE handle = ?",
            (handle,),
        ).rowcount
    assert changed == 1, handle


def assert_no_crash(process: DaphneProcess) -> None:
    log = process.log()
    assert "Traceback" not in log and "Exception inside application" not in log, log


@asynccontextmanager
async def connected(process: DaphneProcess, user_id: str) -> AsyncIterator[Client]:
    client, hello = await connect_user(process.ws, user_id)
    assert hello["user_id"] == user_id
    try:
        yield client
    finally:
        await client.close()


async def next_frame(client: Client, frame_type: str) -> dict[str, Any]:
    return await client.receive_type(frame_type, timeout=FRAME_TIMEOUT)


async def assert_silent(client: Client, wait: float = SILENCE) -> None:
    """Fail if any frame other than a heartbeat ping arrives within `wait` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while (remaining := deadline - loop.time()) > 0:
        try:
            frame = await client.receive(timeout=remaining)
        except TimeoutError:
            return
        assert frame["type"] == "ping", f"expected no frame, got {frame}"


async def push(process: DaphneProcess, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(f"{process.http}/sse/push", json=body)
    assert reply.status_code == 202, reply.text
    return reply.json()


async def still_open(client: Client) -> None:
    await client.send({"type": "ping"})
    await next_frame(client, "pong")


# --- daphne ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bridge(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaphneProcess]:
    """One daphne; `notification_bot` was deactivated before it started, and it
    started with PUBLIC_ACCOUNTS naming that account (which must not revive it)."""
    workdir = tmp_path_factory.mktemp("public-accounts")
    env = server_env(
        redis_server.url,
        f"sqlite:///{workdir / 'bridge.sqlite3'}",
        PUBLIC_ACCOUNTS="notification_bot",
    )
    migrate(env)
    deactivate(env, "notification_bot")
    process = DaphneProcess(env, workdir / "daphne.log")
    try:
        yield process.start()
    finally:
        process.stop()


# --- pushes that mention a bot --------------------------------------------------------


async def test_push_mentioning_a_bot_reaches_the_user_and_the_bot(
    bridge: DaphneProcess,
) -> None:
    alice = fresh("alice")
    async with connected(bridge, alice) as user, connected(bridge, "ci_bot") as bot:
        reply = await push(
            bridge,
            {"user_id": alice, "message": "build failed @ci_bot", "sender": "jenkins"},
        )

        to_alice = await next_frame(user, "message")
        to_bot = await next_frame(bot, "message")

    assert [(r["user_id"], r.get("via")) for r in reply["recipients"]] == [
        (alice, None),
        ("ci_bot", "mention"),
    ]
    assert all(r["online"] for r in reply["recipients"]), reply
    bot_seq = reply["recipients"][1]["seq"]
    assert isinstance(bot_seq, int) and bot_seq >= 1

    assert to_alice["id"] == to_bot["id"] == reply["id"]
    assert to_alice["data"] == to_bot["data"] == {"text": "build failed @ci_bot"}
    assert to_alice["from"] == to_bot["from"] == "jenkins"
    assert (to_alice["to"], to_alice["mentions"], to_alice["seq"]) == (alice, [], 1)
    assert (to_bot["to"], to_bot["mentions"], to_bot["seq"]) == (
        "ci_bot",
        ["ci_bot"],
        bot_seq,
    )
    assert_no_crash(bridge)


async def test_push_mentioning_a_bot_in_any_case_reports_its_canonical_handle(
    bridge: DaphneProcess,
) -> None:
    alice = fresh("alice")
    async with connected(bridge, "ci_bot") as bot:
        reply = await push(bridge, {"user_id": alice, "message": "(@CI_BOT) again"})
        to_bot = await next_frame(bot, "message")

    assert [r["user_id"] for r in reply["recipients"]] == [alice, "ci_bot"]
    assert to_bot["id"] == reply["id"]
    assert to_bot["mentions"] == ["ci_bot"]


async def test_email_address_is_not_a_mention(bridge: DaphneProcess) -> None:
    alice = fresh("alice")
    async with connected(bridge, alice) as user, connected(bridge, "ci_bot") as bot:
        reply = await push(
            bridge, {"user_id": alice, "message": "mail me at email@ci_bot.io"}
        )
        to_alice = await next_frame(user, "message")
        await assert_silent(bot)

    assert [r["user_id"] for r in reply["recipients"]] == [alice]
    assert to_alice["id"] == reply["id"]
    assert to_alice["mentions"] == []


async def test_deactivated_bot_receives_nothing_by_mention(
    bridge: DaphneProcess,
) -> None:
    # Start-up with PUBLIC_ACCOUNTS=notification_bot did not reactivate it.
    assert account_row(bridge.env, "notification_bot") == ("notification_bot", 0)
    alice = fresh("alice")
    async with (
        connected(bridge, alice) as user,
        connected(bridge, "notification_bot") as bot,
    ):
        reply = await push(
            bridge, {"user_id": alice, "message": "@notification_bot ping"}
        )
        to_alice = await next_frame(user, "message")

        await user.send(
            {"type": "message", "text": "hi @notification_bot", "ref": "r1"}
        )
        error = await next_frame(user, "error")

        await assert_silent(bot)

    assert [r["user_id"] for r in reply["recipients"]] == [alice]
    assert to_alice["mentions"] == []
    assert (error["code"], error["ref"]) == ("no_recipient", "r1")


# --- client `message` frames ----------------------------------------------------------


async def test_user_message_mentioning_a_bot_is_acked_and_reaches_only_the_bot(
    bridge: DaphneProcess,
) -> None:
    alice = fresh("alice")
    text = "Please run tests on my branch @ci_bot"
    async with connected(bridge, alice) as user, connected(bridge, "ci_bot") as bot:
        await user.send({"type": "message", "text": text, "ref": "r1"})
        ack = await next_frame(user, "ack")
        to_bot = await next_frame(bot, "message")
        # The sender gets no copy of its own message.
        await assert_silent(user)

    assert ack["ref"] == "r1"
    assert ack["recipients"] == ["ci_bot"]
    assert uuid.UUID(ack["id"])
    assert to_bot["id"] == ack["id"]
    assert to_bot["from"] == alice
    assert to_bot["to"] == "ci_bot"
    assert to_bot["event"] == "message"
    assert to_bot["data"] == {"text": text}
    assert to_bot["mentions"] == ["ci_bot"]
    # Stored like any push: it has a place in ci_bot's stream.
    assert isinstance(to_bot["seq"], int)
    assert_no_crash(bridge)


async def test_user_message_carries_its_data_beside_the_text(
    bridge: DaphneProcess,
) -> None:
    alice = fresh("alice")
    async with connected(bridge, alice) as user, connected(bridge, "ci_bot") as bot:
        await user.send(
            {
                "type": "message",
                "text": "@ci_bot build",
                "data": {"branch": "feature/x", "type": "bridge.deliver"},
            }
        )
        ack = await next_frame(user, "ack")
        to_bot = await next_frame(bot, "message")

    assert ack["ref"] is None
    assert to_bot["data"] == {
        "text": "@ci_bot build",
        "data": {"branch": "feature/x", "type": "bridge.deliver"},
    }


async def test_bot_replies_to_a_user_with_to(bridge: DaphneProcess) -> None:
    alice = fresh("alice")
    async with connected(bridge, alice) as user, connected(bridge, "ci_bot") as bot:
        await user.send({"type": "message", "text": "@ci_bot run tests"})
        await next_frame(user, "ack")
        question = await next_frame(bot, "message")
        assert question["from"] == alice

        await bot.send(
            {"type": "message", "text": "tests passed", "to": alice, "ref": "re"}
        )
        ack = await next_frame(bot, "ack")
        answer = await next_frame(user, "message")
        await assert_silent(bot)

    assert (ack["ref"], ack["recipients"]) == ("re", [alice])
    assert answer["id"] == ack["id"]
    assert answer["from"] == "ci_bot"
    assert answer["to"] == alice
    assert answer["event"] == "message"
    assert answer["data"] == {"text": "tests passed"}
    assert answer["mentions"] == []
    assert answer["seq"] == 1


async def test_user_may_not_address_another_user(bridge: DaphneProcess) -> None:
    alice, bob = fresh("alice"), fresh("bob")
    async with connected(bridge, alice) as user, connected(bridge, bob) as other:
        await user.send(
            {"type": "message", "text": "psst @ci_bot", "to": bob, "ref": "r2"}
        )
        error = await next_frame(user, "error")
        await assert_silent(other)
        await still_open(user)

    assert (error["code"], error["ref"]) == ("forbidden", "r2")
    assert error["message"]


async def test_message_without_a_mention_has_no_recipient(
    bridge: DaphneProcess,
) -> None:
    alice = fresh("alice")
    async with connected(bridge, alice) as user:
        await user.send({"type": "message", "text": "hello", "ref": "r3"})
        error = await next_frame(user, "error")
        await still_open(user)

    assert (error["code"], error["ref"]) == ("no_recipient", "r3")


async def test_message_frames_over_the_rate_limit_are_refused(
    daphne_factory: Callable[..., DaphneProcess],
) -> None:
    server = daphne_factory(BRIDGE_CLIENT_MESSAGES_PER_MINUTE="3")
    alice = fresh("alice")
    async with connected(server, alice) as user, connected(server, "ci_bot") as bot:
        for n in range(3):
            await user.send({"type": "message", "text": f"@ci_bot #{n}", "ref": f"{n}"})
            ack = await next_frame(user, "ack")
            assert ack["ref"] == f"{n}"
        await user.send({"type": "message", "text": "@ci_bot #3", "ref": "3"})
        error = await next_frame(user, "error")

        received = [(await next_frame(bot, "message"))["data"] for _ in range(3)]
        await assert_silent(bot)
        await still_open(user)

    assert (error["code"], error["ref"]) == ("rate_limited", "3")
    assert received == [{"text": f"@ci_bot #{n}"} for n in range(3)]
    assert_no_crash(server)


# --- PUBLIC_ACCOUNTS at start-up ------------------------------------------------------


async def test_public_accounts_setting_creates_a_mentionable_bot_at_start_up(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    env = server_env(
        redis_server.url,
        f"sqlite:///{tmp_path / 'bridge.sqlite3'}",
        PUBLIC_ACCOUNTS="deploy_bot",
    )
    migrate(env)
    assert account_row(env, "deploy_bot") is None
    server = DaphneProcess(env, tmp_path / "daphne.log")
    try:
        server.start()
        assert account_row(env, "deploy_bot") == ("deploy_bot", 1)

        alice = fresh("alice")
        async with connected(server, "deploy_bot") as bot:
            reply = await push(
                server,
                {"user_id": alice, "message": "ship it @deploy_bot", "sender": "ops"},
            )
            to_bot = await next_frame(bot, "message")
    finally:
        server.stop()

    assert [(r["user_id"], r.get("via")) for r in reply["recipients"]] == [
        (alice, None),
        ("deploy_bot", "mention"),
    ]
    assert to_bot["id"] == reply["id"]
    assert (to_bot["from"], to_bot["to"], to_bot["mentions"], to_bot["seq"]) == (
        "ops",
        "deploy_bot",
        ["deploy_bot"],
        1,
    )
    assert to_bot["data"] == {"text": "ship it @deploy_bot"}
