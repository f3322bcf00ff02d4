"""BRIDGE_MAX_BODY_BYTES against a real daphne: a body over the limit is refused
while it arrives, before authentication, and is never buffered whole.

Each test talks raw HTTP/1.1 over a socket, so it controls exactly what is
sent: a Content-Length over the limit, or a chunked body that keeps going.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_project.embedded_redis import EmbeddedRedis
from tests.support.credentials import manage, token_mode_env
from tests.support.daphne import DaphneProcess, running_daphnes
from tests.support.ids import fresh_user_id
from tests.support.logs import assert_no_crash

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

LIMIT = 64 * 1024
CHUNK = 64 * 1024
# What a client keeps sending when nothing stops it: far over the limit, and
# enough that buffering it whole shows in the server's memory.
FLOOD = 256 * 1024 * 1024
# Kernel socket buffers on both sides hold a few MiB that the server never
# read; more than this sent before the reply means the server kept reading.
READ_AHEAD_BOUND = 32 * 1024 * 1024
RSS_GROWTH_BOUND = 24 * 1024 * 1024


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis,
    migrated_sqlite: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaphneProcess]:
    """Token mode: an unauthenticated request over the limit would be a 401 if
    the limit were only checked after authentication."""
    workdir = tmp_path_factory.mktemp("body-limit")
    with running_daphnes(
        redis_server.url,
        workdir,
        1,
        database=migrated_sqlite,
        **token_mode_env(BRIDGE_MAX_BODY_BYTES=str(LIMIT)),
    ) as (process,):
        yield process
        assert_no_crash(process.log())


def rss_bytes(process: DaphneProcess) -> int:
    assert process.process is not None
    status = Path(f"/proc/{process.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def read_response(conn: socket.socket) -> tuple[int, dict, dict]:
    """One response, read with plain recv: the kernel hands over what arrived
    even when the server has reset the connection since."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(conn)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, value in (line.split(":", 1) for line in lines[1:] if line)
    }
    while len(rest) < int(headers["content-length"]):
        rest += _recv(conn)
    return status, headers, json.loads(rest)


def _recv(conn: socket.socket) -> bytes:
    part = conn.recv(65536)
    if not part:
        raise ConnectionError("closed before a whole response")
    return part


def connect(server: DaphneProcess) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return conn


def request_head(server: DaphneProcess, *headers: str) -> bytes:
    lines = [
        "POST /sse/push HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Content-Type: application/json",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def flood_while_reading(
    conn: socket.socket, body_parts: Iterator[bytes]
) -> tuple[tuple[int, dict, dict], int]:
    """Send body parts from a thread until the server answers, closes, or the
    flood is spent; returns the reply and the bytes written before it."""
    answered = threading.Event()
    sent = 0

    def send() -> None:
        nonlocal sent
        try:
            for part in body_parts:
                if answered.is_set():
                    return
                conn.sendall(part)
                sent += len(part)
        except OSError:  # reset or closed by the server
            pass

    sender = threading.Thread(target=send)
    sender.start()
    try:
        reply = read_response(conn)
        sent_before_reply = sent
    finally:
        answered.set()
        sender.join()
    return reply, sent_before_reply


def assert_too_large(status: int, headers: dict, body: dict) -> None:
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert body["error"] == "too_large"
    assert body["detail"] == {"max_bytes": LIMIT}
    assert str(LIMIT) in body["message"]


def test_a_declared_length_over_the_limit_is_refused_before_the_body(server):
    with connect(server) as conn:
        # Headers only: the reply must come without a byte of the body.
        conn.sendall(request_head(server, f"Content-Length: {FLOOD}"))
        status, headers, body = read_response(conn)
        assert_too_large(status, headers, body)
        assert headers["connection"] == "close"
        assert conn.recv(1) == b""  # and the connection is closed


def test_expect_continue_over_the_limit_gets_413_not_100(server):
    with connect(server) as conn:
        conn.sendall(
            request_head(server, f"Content-Length: {FLOOD}", "Expect: 100-continue")
        )
        status, headers, body = read_response(conn)
        assert_too_large(status, headers, body)


def test_a_declared_length_body_sent_anyway_is_not_read(server):
    before = rss_bytes(server)
    with connect(server) as conn:
        conn.sendall(request_head(server, f"Content-Length: {FLOOD}"))
        reply, sent = flood_while_reading(
            conn, (b"x" * CHUNK for _ in range(FLOOD // CHUNK))
        )
    assert_too_large(*reply)
    assert sent < READ_AHEAD_BOUND
    assert rss_bytes(server) - before < RSS_GROWTH_BOUND


def chunked(parts: Iterator[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"


def test_a_chunked_body_that_keeps_going_is_refused_at_the_limit(server):
    before = rss_bytes(server)
    with connect(server) as conn:
        conn.sendall(request_head(server, "Transfer-Encoding: chunked"))
        reply, sent = flood_while_reading(
            conn, chunked(b"\0" * CHUNK for _ in range(FLOOD // CHUNK))
        )
    assert_too_large(*reply)
    assert sent < READ_AHEAD_BOUND
    assert rss_bytes(server) - before < RSS_GROWTH_BOUND


def test_a_chunked_body_within_the_limit_is_read_and_accepted(server):
    created = manage(
        server.env, "create_api_key", "--service", "chunked", "--perm", "push"
    )
    key = created.stdout.strip().splitlines()[-1]
    user = fresh_user_id("chunky")
    payload = json.dumps({"user_id": user, "message": "sent in chunks"}).encode()
    with connect(server) as conn:
        conn.sendall(
            request_head(
                server, "Transfer-Encoding: chunked", f"Authorization: Bearer {key}"
            )
        )
        for part in chunked(iter([payload[:10], payload[10:]])):
            conn.sendall(part)
        status, _, body = read_response(conn)
    assert status == 202, body
    assert body["recipients"][0]["user_id"] == user


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_streaming_a_huge_body_gets_the_413(server):
    # The report's reproduction: `curl -T -` from /dev/zero, no Content-Length.
    before = rss_bytes(server)
    done = subprocess.run(
        f"head -c {FLOOD} /dev/zero | curl -sS -m 60 -X POST -T - "
        "-H 'Content-Type: application/json' -w '\\n%{http_code}' "
        f"http://127.0.0.1:{server.port}/sse/push",
        shell=True,
        capture_output=True,
        text=True,
        timeout=90,
    )
    body, _, status = done.stdout.rpartition("\n")
    assert status == "413", done.stdout + done.stderr
    assert json.loads(body)["error"] == "too_large"
    assert rss_bytes(server) - before < RSS_GROWTH_BOUND
