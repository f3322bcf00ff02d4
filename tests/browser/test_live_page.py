"""The admin's Live connections page in a real browser (issue 17): it shows a
new connection without a reload, and its Disconnect button closes it."""

from __future__ import annotations

import pytest

from tests.support.credentials import django_shell
from tests.support.ids import fresh_user_id
from tests.support.ws import Client, connect_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

STAFF = """
import json
from django.contrib.auth import get_user_model
User = get_user_model()
if not User.objects.filter(username="operator").exists():
    User.objects.create_user("operator", password="op-pass-1", is_staff=True)
print(json.dumps({"ok": True}))
"""


async def logged_in_page(browser, server):
    django_shell(server.env, STAFF)
    page = await browser.new_page()
    await page.goto(f"{server.http}/admin/login/?next=/admin/live-connections/")
    await page.fill("#id_username", "operator")
    await page.fill("#id_password", "op-pass-1")
    await page.click("input[type=submit]")
    await page.wait_for_url("**/admin/live-connections/")
    await page.locator("#live-state.live").wait_for(timeout=10_000)
    return page


async def test_a_new_connection_shows_and_the_disconnect_button_closes_it(
    browser, server, sockets
):
    page = await logged_in_page(browser, server)
    user = fresh_user_id("visitor")

    client, _ = await connect_user(server.ws, user)
    sockets.append(client)
    row = page.locator(f'#live-connections tr[data-user="{user}"]')
    await row.wait_for(timeout=5_000)
    assert await row.locator(".count").inner_text() == "1"
    assert user in await page.locator("#live-events").inner_text()

    await row.locator(".disconnect-button").click()
    assert await client.close_code() == 4000
    await row.wait_for(state="detached", timeout=5_000)
    assert f"{user} disconnected" in await page.locator("#live-events").inner_text()


async def test_the_monitor_socket_refuses_a_page_without_a_staff_session(
    browser, server
):
    page = await browser.new_page()
    await page.goto(f"{server.http}/admin/login/")
    code = await page.evaluate(
        """() => new Promise((resolve) => {
            const socket = new WebSocket(`ws://${location.host}/ws/monitor`);
            socket.onclose = (event) => resolve(event.code);
        })"""
    )
    assert code == 4401


async def test_a_client_socket_is_not_a_monitor(server):
    client = await Client.connect(f"{server.ws}/ws/monitor")
    assert (await client.receive())["code"] == "unauthenticated"
    assert await client.close_code() == 4401
