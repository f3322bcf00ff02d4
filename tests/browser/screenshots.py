"""The screenshots in docs/ (`python -m tests.browser.screenshots`): a fresh
redis-server and daphne, a few connected users and pushes, then Debian's
Chromium captures the admin's Live connections page."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx

from bridge_project.embedded_redis import EmbeddedRedis
from tests.browser.conftest import CHROMIUM
from tests.browser.test_live_page import STAFF
from tests.support.credentials import django_shell
from tests.support.daphne import running_daphnes
from tests.support.ws import connect_user

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def live_connections(server) -> None:
    from playwright.async_api import async_playwright

    clients = [
        (await connect_user(server.ws, u))[0] for u in ("alice", "bob", "ci_bot")
    ]
    django_shell(server.env, STAFF)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"]
        )
        page = await browser.new_page(viewport={"width": 1200, "height": 900})
        await page.goto(f"{server.http}/admin/login/?next=/admin/live-connections/")
        await page.fill("#id_username", "operator")
        await page.fill("#id_password", "op-pass-1")
        await page.click("input[type=submit]")
        await page.locator("#live-state.live").wait_for()
        clients.append((await connect_user(server.ws, "dave"))[0])
        async with httpx.AsyncClient() as http:
            for n in range(30):
                await http.post(
                    f"{server.http}/sse/push",
                    json={"user_id": "alice", "message": f"{n}"},
                )
        await clients[1].close()
        await asyncio.sleep(1.2)  # two looks of the monitor
        await page.screenshot(path=DOCS / "live-connections.png", full_page=True)
        await browser.close()
    for client in clients:
        await client.close()


async def demo(server) -> None:
    """Two users in the lobby, a notification, and the bot's reply streaming."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"]
        )
        pages = []
        for user in ("alice", "bob"):
            page = await browser.new_page(viewport={"width": 1100, "height": 700})
            await page.goto(f"{server.http}/demo/")
            await page.fill("#user-id", user)
            await page.click("#join")
            await page.locator('#conn[data-state="connected"]').wait_for()
            pages.append(page)
        alice, bob = pages
        for page, text in (
            (alice, "Is the release ready?"),
            (bob, "Tests are running, ask the bot"),
        ):
            await page.fill("#text", text)
            await page.press("#text", "Enter")
            await asyncio.sleep(0.3)
        await bob.fill("#text", "one more thing")  # typing, shown to alice
        bot, _ = await connect_user(server.ws, "ci_bot")
        await alice.click('#directs button[data-key="dm:ci_bot"]')
        await alice.click('#rooms button[data-key="room:demo:lobby"]')
        async with httpx.AsyncClient() as http:
            await http.post(
                f"{server.http}/sse/push",
                json={
                    "user_id": "alice",
                    "event": "notification",
                    "data": {
                        "title": "Build #42",
                        "body": "passed on main",
                        "level": "success",
                    },
                },
            )
        for word in ["All", "1,716", "tests", "passed;", "deploying"]:
            await bot.send(
                {
                    "type": "stream",
                    "stream_id": "r1",
                    "to": "alice",
                    "delta": word + " ",
                }
            )
        await asyncio.sleep(0.6)
        await alice.screenshot(path=DOCS / "demo.png")
        await alice.click('#directs button[data-key="dm:ci_bot"]')
        await asyncio.sleep(0.3)
        await alice.screenshot(path=DOCS / "demo-bot.png")
        await bot.close()
        await browser.close()


def main() -> None:
    redis = EmbeddedRedis().start()
    try:
        with running_daphnes(redis.url, Path(tempfile.mkdtemp()), 1) as (server,):
            asyncio.run(live_connections(server))
            asyncio.run(demo(server))
    finally:
        redis.stop()
    print(f"wrote {DOCS}/live-connections.png, demo.png and demo-bot.png")


if __name__ == "__main__":
    main()
