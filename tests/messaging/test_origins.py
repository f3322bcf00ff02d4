"""Which browser Origins may open a WebSocket (SPEC §4), as pure functions."""

from __future__ import annotations

import pytest
from django.test import override_settings

from messaging.realtime.origins import origin_allowed, parse_origin

ALLOWED = "https://app.example.com"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://app.example.com", ("https", "app.example.com", 443)),
        ("http://app.example.com", ("http", "app.example.com", 80)),
        ("https://app.example.com:8443", ("https", "app.example.com", 8443)),
        ("https://app.example.com/", ("https", "app.example.com", 443)),
        ("HTTPS://App.Example.COM", ("https", "app.example.com", 443)),
        ("http://127.0.0.1:8000", ("http", "127.0.0.1", 8000)),
        ("http://[::1]:8000", ("http", "::1", 8000)),
        (" https://app.example.com ", ("https", "app.example.com", 443)),
    ],
)
def test_parse_origin_gives_scheme_host_and_port(raw, expected):
    assert parse_origin(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "null",
        "",
        "app.example.com",
        "https://",
        "ftp://app.example.com",
        "file://",
        "chrome-extension://abcdefghijklmnop",
        "https://app.example.com/path",
        "https://app.example.com?q=1",
        "https://app.example.com#frag",
        "https://user@app.example.com",
        "https://user:pw@app.example.com",
        "https://app.example.com:99999",
        "https://app.example.com:port",
        "https://[::1",
    ],
)
def test_parse_origin_refuses_null_and_anything_that_is_not_an_origin(raw):
    assert parse_origin(raw) is None


def allowed(
    origin: str | None,
    *,
    scheme: str = "ws",
    host: str = "bridge.example.net:8000",
    allowed_hosts: list[str] | None = None,
    allowed_origins: list[str] | None = None,
) -> bool:
    with override_settings(
        ALLOWED_HOSTS=allowed_hosts if allowed_hosts is not None else ["127.0.0.1"],
        BRIDGE_ALLOWED_ORIGINS=(
            allowed_origins if allowed_origins is not None else [ALLOWED]
        ),
    ):
        return origin_allowed(origin, scope_scheme=scheme, host_header=host)


def test_a_client_without_an_origin_header_is_allowed():
    assert allowed(None, allowed_hosts=[], allowed_origins=[])


@pytest.mark.parametrize(
    "origin",
    [
        ALLOWED,
        "https://app.example.com/",
        "https://app.example.com:443",
        "HTTPS://APP.EXAMPLE.COM",
    ],
)
def test_a_configured_origin_is_allowed_in_any_spelling_of_itself(origin):
    assert allowed(origin)


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.test",
        "null",
        "https://evil.example.com",
        "https://example.com",
        "https://xapp.example.com",
        "https://app.example.com.evil.test",
        "http://app.example.com",
        "https://app.example.com:8443",
        "wss://app.example.com",
        "https://app.example.com/path",
    ],
)
def test_anything_but_a_configured_or_own_origin_is_refused(origin):
    assert not allowed(origin)


def test_the_pages_own_origin_is_allowed_when_its_host_is_in_allowed_hosts():
    assert allowed(
        "http://127.0.0.1:8000", host="127.0.0.1:8000", allowed_hosts=["127.0.0.1"]
    )


def test_own_origin_over_tls_is_the_https_origin_on_the_default_port():
    assert allowed(
        "https://bridge.example.net",
        scheme="wss",
        host="bridge.example.net",
        allowed_hosts=["bridge.example.net"],
    )


def test_own_origin_for_an_ipv6_host_in_allowed_hosts_is_allowed():
    # Django spells IPv6 hosts in ALLOWED_HOSTS with brackets ("[::1]" is a default).
    assert allowed("http://[::1]:8000", host="[::1]:8000", allowed_hosts=["[::1]"])


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:8001", "127.0.0.1:8000"),  # other port
        ("https://127.0.0.1:8000", "127.0.0.1:8000"),  # other scheme
        ("http://localhost:8000", "127.0.0.1:8000"),  # other host
    ],
)
def test_own_origin_must_match_scheme_host_and_port_of_the_socket(origin, host):
    assert not allowed(origin, host=host, allowed_hosts=["127.0.0.1", "localhost"])


def test_own_origin_is_refused_when_its_host_is_not_in_allowed_hosts():
    assert not allowed(
        "http://evil.test:8000", host="evil.test:8000", allowed_hosts=["127.0.0.1"]
    )


def test_no_host_header_means_no_own_origin():
    assert not allowed("http://127.0.0.1", host="", allowed_hosts=["127.0.0.1"])


@pytest.mark.parametrize("pattern", ["*", ".example.com", ".evil.test"])
def test_allowed_hosts_patterns_never_admit_an_origin(pattern):
    for origin, host in [
        ("https://evil.test", "evil.test"),
        ("http://evil.example.com", "evil.example.com"),
        ("https://anything.evil.test", "anything.evil.test"),
    ]:
        assert not allowed(
            origin, scheme="wss", host=host, allowed_hosts=[pattern], allowed_origins=[]
        ), (origin, pattern)


@pytest.mark.parametrize("entry", ["*", "null", "https://*.example.com", "https://*"])
def test_wildcards_and_null_in_allowed_origins_admit_nothing(entry):
    for origin in ["null", "https://evil.test", "https://app.example.com"]:
        assert not allowed(origin, allowed_hosts=[], allowed_origins=[entry]), (
            origin,
            entry,
        )
