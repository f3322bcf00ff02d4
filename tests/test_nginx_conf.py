"""deploy/nginx.conf: what the proxy must never pass through to a replica."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def proxied_locations() -> dict[str, str]:
    """Each `location` block that proxies to Bridge, by its pattern."""
    text = (REPO / "deploy" / "nginx.conf").read_text()
    text = re.sub(r"#[^\n]*", "", text)
    blocks = dict(re.findall(r"location\s+([^{]+?)\s*\{([^{}]*)\}", text))
    return {name: body for name, body in blocks.items() if "proxy_pass" in body}


def test_both_proxied_locations_are_found():
    assert set(proxied_locations()) == {"= /ws", "/"}


def test_every_proxied_location_clears_daphne_root_path():
    # daphne sets the ASGI root_path from this client header, and Django then
    # strips it from the path: /x/metrics would reach the blocked /metrics.
    for name, body in proxied_locations().items():
        assert re.search(r'proxy_set_header\s+Daphne-Root-Path\s+""\s*;', body), name
