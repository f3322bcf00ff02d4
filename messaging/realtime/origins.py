"""Which browser Origins may open a WebSocket (SPEC §4).

Channels' AllowedHostsOriginValidator refuses clients that send no Origin and
admits every origin when ALLOWED_HOSTS has "*"; Bridge needs the opposite on
both counts, so the rule is written out here:

- no Origin header: allowed (bots and services are not browsers);
- an exact entry of BRIDGE_ALLOWED_ORIGINS: scheme, host and port all equal;
- the page's own origin: host literally in ALLOWED_HOSTS (patterns such as
  "*" or ".example.com" do not count) with the scheme and port the socket was
  opened on;
- anything else, "null" included: refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WS_TO_HTTP = {"ws": "http", "wss": "https"}

Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port), or None for "null" and anything malformed."""
    try:
        parts = urlsplit(value.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host or port is None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return (scheme, host, port)


def origin_allowed(origin: str | None, *, scope_scheme: str, host_header: str) -> bool:
    if origin is None:
        return True
    parsed = parse_origin(origin)
    if parsed is None:
        return False
    if parsed in _configured_origins(settings.BRIDGE_ALLOWED_ORIGINS):
        return True
    return parsed == _own_origin(scope_scheme, host_header)


def _configured_origins(entries: Iterable[str]) -> set[Origin]:
    return {parsed for entry in entries if (parsed := parse_origin(entry))}


def _own_origin(scope_scheme: str, host_header: str) -> Origin | None:
    scheme = _WS_TO_HTTP.get(scope_scheme, scope_scheme)
    own = parse_origin(f"{scheme}://{host_header}") if host_header else None
    if own is None:
        return None
    # urlsplit drops an IPv6 literal's brackets; ALLOWED_HOSTS keeps them.
    literal_hosts = {
        h.lower().strip("[]")
        for h in settings.ALLOWED_HOSTS
        if h != "*" and not h.startswith(".")
    }
    return own if own[1] in literal_hosts else None
