"""Browser tests: Playwright driving Debian's Chromium (never a downloaded
browser). Where Chromium is missing they are not collected, and the run says
so in one line (`.ci/run` installs it, so CI always runs them)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest

# The end-to-end fixtures: a daphne on the suite's Redis, WebSocket clients.
from tests.e2e.conftest import http, migrated_sqlite, server, sockets  # noqa: F401

CHROMIUM = os.environ.get("BRIDGE_CHROMIUM") or shutil.which("chromium")


def pytest_collection_modifyitems(config, items) -> None:
    if CHROMIUM is not None:
        return
    browser_items = [item for item in items if "tests/browser/" in item.nodeid]
    if not browser_items:
        return
    for item in browser_items:
        items.remove(item)
    config.hook.pytest_deselected(items=browser_items)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"browser tests NOT RUN ({len(browser_items)}): no Chromium on this "
        "machine (apt-get install chromium); CI installs it"
    )
    if reporter is not None:
        reporter.write_line(line, yellow=True, bold=True)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            await browser.close()
