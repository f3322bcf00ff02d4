"""The demo page (/demo/) in a real browser (issue 17): two users chatting in
a room, a notification pushed over HTTP, a bot's streamed reply growing, 200
pushes through five seconds offline, a reload that resumes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.daphne import running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.ws import connect_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


async def open_demo(browser, server, user: str, context=None):
    context = context or await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{server.http}/demo/")
    await page.fill("#user-id", user)
    await page.click("#join")
    await page.locator('#conn[data-state="connected"]').wait_for(timeout=10_000)
    page.errors = errors
    return page


def bubbles(page):
    return page.locator("#messages .message .body")


async def test_two_users_chat_in_a_room_with_typing_and_seen(browser, server):
    alice, bob = fresh_user_id("alice"), fresh_user_id("bob")
    one = await open_demo(browser, server, alice)
    two = await open_demo(browser, server, bob)

    await one.fill("#text", "hello from alice")  # typing goes out as a signal
    await two.locator("#typing").get_by_text(f"{alice} is typing").wait_for()
    await one.press("#text", "Enter")
    await two.locator("#messages").get_by_text("hello from alice").wait_for()

    # bob has the room open, so he has read it: alice sees "Seen by bob".
    await one.locator(".message.mine .seen").get_by_text(f"Seen by {bob}").wait_for()
    assert one.errors == [] and two.errors == []


async def test_a_push_shows_as_a_notification_by_level(browser, server, http):
    user = fresh_user_id("carol")
    page = await open_demo(browser, server, user)
    reply = await http.post(
        f"{server.http}/sse/push",
        json={
            "user_id": user,
            "event": "notification",
            "data": {"title": "Deploy", "body": "v42 is live", "level": "success"},
        },
    )
    assert reply.status_code == 202
    toast = page.locator(".toast.level-success")
    await toast.get_by_text("Deploy").wait_for()
    await page.locator("#notification-list").get_by_text("v42 is live").wait_for()


async def test_a_bots_streamed_reply_grows_then_becomes_one_message(
    browser, server, sockets
):
    user = fresh_user_id("dave")
    page = await open_demo(browser, server, user)
    await page.click('#directs button[data-key="dm:ci_bot"]')
    bot, _ = await connect_user(server.ws, "ci_bot")
    sockets.append(bot)

    for word in ("The ", "build ", "is "):
        await bot.send({"type": "stream", "stream_id": "r", "to": user, "delta": word})
    growing = page.locator("#messages .message.streaming .body")
    await growing.get_by_text("The build is").wait_for()
    await bot.send(
        {
            "type": "stream",
            "stream_id": "r",
            "to": user,
            "delta": "green",
            "final": True,
        }
    )
    await (
        page.locator("#messages .message:not(.streaming) .body")
        .get_by_text("The build is green")
        .wait_for()
    )
    assert await page.locator("#messages .message").count() == 1


async def test_two_hundred_pushes_through_five_seconds_offline(browser, server):
    user = fresh_user_id("erin")
    context = await browser.new_context()
    page = await open_demo(browser, server, user, context)
    await page.click('#directs button[data-key="inbox"]')

    await context.set_offline(True)
    async with httpx.AsyncClient(timeout=30) as http:

        async def push(n: int) -> None:
            reply = await http.post(
                f"{server.http}/sse/push", json={"user_id": user, "message": f"n{n}"}
            )
            assert reply.status_code == 202

        for start in range(0, 200, 20):
            await asyncio.gather(*(push(n) for n in range(start, start + 20)))
    await asyncio.sleep(5)
    await context.set_offline(False)

    await page.locator("#messages .message").nth(199).wait_for(timeout=30_000)
    seqs = await page.locator("#messages .message").evaluate_all(
        "items => items.map(i => Number(i.dataset.seq))"
    )
    assert seqs == list(range(1, 201))  # all 200, once, in order


async def test_a_reload_resumes_where_the_page_was(browser, server, http):
    user = fresh_user_id("fay")
    page = await open_demo(browser, server, user)
    await page.click('#directs button[data-key="inbox"]')
    for n in range(3):
        await http.post(
            f"{server.http}/sse/push", json={"user_id": user, "message": f"a{n}"}
        )
    await page.locator("#messages .message").nth(2).wait_for()

    await page.reload()
    for n in range(2):
        await http.post(
            f"{server.http}/sse/push", json={"user_id": user, "message": f"b{n}"}
        )
    await page.locator('#conn[data-state="connected"]').wait_for()
    await page.click('#directs button[data-key="inbox"]')
    await page.locator("#messages .message").nth(1).wait_for()
    await asyncio.sleep(0.5)
    texts = await bubbles(page).all_inner_texts()
    assert texts == ["b0", "b1"]  # resumed after a2: nothing lost, nothing again


async def test_a_room_joined_by_name_is_shared(browser, server):
    room = fresh_user_id("r")
    one = await open_demo(browser, server, fresh_user_id("gus"))
    two = await open_demo(browser, server, fresh_user_id("hal"))
    for page in (one, two):
        await page.fill("#room-name", room)
        await page.press("#room-name", "Enter")
        await page.locator(f'#rooms button[data-key="room:demo:{room}"]').wait_for()
    await one.fill("#text", "anyone here?")
    await one.press("#text", "Enter")
    await two.locator("#messages").get_by_text("anyone here?").wait_for()


@pytest.fixture(scope="module")
def demo_server(redis_server, migrated_sqlite, tmp_path_factory):
    """What `make demo` runs: a server where the example bot is a public
    account, and examples/echo_bot.py connected to it."""
    with running_daphnes(
        redis_server.url,
        tmp_path_factory.mktemp("demo"),
        1,
        database=migrated_sqlite,
        PUBLIC_ACCOUNTS="echo_bot",
    ) as (server,):
        log = open(tmp_path_factory.mktemp("bot") / "bot.log", "wb")  # noqa: SIM115
        bot = subprocess.Popen(
            [sys.executable, "examples/echo_bot.py", "--pause", "0.15"],
            cwd=REPO,
            env={**os.environ, "BRIDGE_URL": server.http},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield server
        finally:
            bot.terminate()
            bot.wait(10)
            log.close()


async def test_the_example_bots_streamed_reply_renders_progressively(
    browser, demo_server
):
    page = await open_demo(browser, demo_server, fresh_user_id("ivy"))
    await page.click('#directs button[data-key="dm:echo_bot"]')
    await page.fill("#text", "what is the weather like on the moon")
    await page.press("#text", "Enter")

    # Word by word: first a growing bubble, then one stored message.
    growing = page.locator("#messages .message.streaming .body")
    await growing.get_by_text("You said:").wait_for(timeout=15_000)
    partial = await growing.inner_text()
    final = page.locator("#messages .message:not(.mine):not(.streaming) .body")
    await final.get_by_text("You said: what is the weather like on the moon").wait_for(
        timeout=15_000
    )
    assert len(partial) < len("You said: what is the weather like on the moon")
    assert await page.locator("#messages .message:not(.mine)").count() == 1
