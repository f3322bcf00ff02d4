"""The Django admin under daphne, with its static files (served by whitenoise)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.logs import assert_no_crash

pytestmark = pytest.mark.e2e


async def test_admin_login_page_and_its_stylesheets_are_served(server):
    async with httpx.AsyncClient(timeout=10, base_url=server.http) as http:
        login = await http.get("/admin/login/")
        assert login.status_code == 200, login.text
        assert login.headers["content-type"].startswith("text/html")
        assert "<form" in login.text
        stylesheets = re.findall(r'<link[^>]+href="([^"]+\.css)"', login.text)
        assert "/static/admin/css/base.css" in stylesheets
        for href in stylesheets:
            css = await http.get(href)
            assert css.status_code == 200, href
            assert css.headers["content-type"].startswith("text/css"), href
            assert css.content.strip(), href
        missing = await http.get("/static/admin/css/no-such-file.css")
        assert missing.status_code == 404
    assert_no_crash(server.log())
