"""Hostile input gets a clean refusal, never a 500 or a dead socket (SPEC §2, §6).

Complements tests/messaging/test_push_api.py, test_batch_api.py and
test_consumer.py, which cover /sse/push's malformed bodies and ordinary refused
frames: here are the other endpoints, the nesting depths just under the parser's
limit, numbers JSON cannot carry, and oversized or malformed credentials.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.models import PublicAccount
from bridge_project.asgi import application
from messaging.models import Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

TIMEOUT = 5
PUSH, BATCH, TOKENS = "/sse/push", "/sse/push/batch", "/api/tokens"


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == code
    return body


def post_raw(client: Client, path: str, raw: str | bytes, content_type: str):
    return client.generic("POST", path, data=raw, content_type=content_type)


# --- bodies on the endpoints test_push_api.py does not cover ---------------------


@pytest.mark.parametrize("path", [TOKENS, BATCH])
def test_body_over_max_body_bytes_is_json_413(client, settings, path):
    settings.BRIDGE_MAX_BODY_BYTES = 2048
    raw = json.dumps({"user_id": "alice", "padding": "x" * 3000})
    assert_error(post_raw(client, path, raw, "application/json"), 413, "too_large")


@pytest.mark.parametrize("path", [TOKENS, BATCH])
@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000,
        '{"a": ' * 100_000,
        '{"messages": [' + "[" * 100_000,
        b'{"user_id": "al\xffice"}',
        b"\xfe\xff\x00{",
        '{"user_id": "alice"',
        '{"user_id": "x\\ud800"}',
        '{"user_id": NaN}',
    ],
    ids=[
        "deep-list",
        "deep-object",
        "deep-in-field",
        "not-utf8",
        "utf16-bom",
        "truncated",
        "lone-surrogate",
        "nan",
    ],
)
def test_malformed_body_is_400(client, path, raw):
    body = assert_error(post_raw(client, path, raw, "application/json"), 400, "invalid")
    assert isinstance(body["detail"], dict)
    assert not Message.objects.exists()


# NUL: PostgreSQL's text and jsonb cannot hold it, so a NUL that got past the
# parser failed the insert and answered 503 "retry later", for ever.
NUL_BODIES = {
    "data-string": (PUSH, '{"user_id": "alice", "data": {"t": "\\u0000"}}'),
    "data-key": (PUSH, '{"user_id": "alice", "data": {"k\\u0000": 1}}'),
    "deep-in-data": (PUSH, '{"user_id": "alice", "data": [[{"a": ["x\\u0000y"]}]]}'),
    "message": (PUSH, '{"user_id": "alice", "message": "hi \\u0000 there"}'),
    "idempotency-key": (
        PUSH,
        '{"user_id": "alice", "message": "hi", "idempotency_key": "k\\u0000"}',
    ),
    "batch-item": (
        BATCH,
        '{"messages": [{"user_id": "alice", "message": "ok"},'
        ' {"user_id": "bob", "data": {"t": "\\u0000"}}]}',
    ),
    "token-user-id": (TOKENS, '{"user_id": "alice\\u0000"}'),
}


@pytest.mark.parametrize(("path", "raw"), NUL_BODIES.values(), ids=NUL_BODIES.keys())
def test_nul_in_any_string_or_key_is_400_and_nothing_is_stored(client, path, raw):
    body = assert_error(post_raw(client, path, raw, "application/json"), 400, "invalid")
    (problem,) = body["detail"]["body"]
    assert problem["code"] == "parse_error", body
    assert "NUL" in problem["message"], body
    assert not Message.objects.exists()


def test_escaped_backslash_before_u0000_is_not_a_nul(client):
    # "\\u0000" in JSON is a backslash followed by "u0000": ordinary text.
    raw = '{"user_id": "alice", "data": {"t": "\\\\u0000"}}'
    response = post_raw(client, PUSH, raw, "application/json")
    assert response.status_code == 202, response.content
    assert Message.objects.get().data == {"t": "\\u0000"}


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"],
)
def test_token_minting_with_a_wrong_content_type_is_415(client, content_type):
    response = post_raw(client, TOKENS, '{"user_id": "alice"}', content_type)
    assert_error(response, 415, "unsupported_media_type")


def test_token_minting_without_a_content_type_is_415(client):
    # SPEC §6: 415 for anything that is not application/json, as /sse/push does;
    # DRF alone reads a body without Content-Type as empty and answers 400.
    response = post_raw(client, TOKENS, '{"user_id": "alice"}', "")
    assert_error(response, 415, "unsupported_media_type")


def test_token_minting_with_a_form_body_is_415(client):
    response = client.post(TOKENS, data={"user_id": "alice"})
    assert_error(response, 415, "unsupported_media_type")


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


DEEP_BODIES: dict[str, tuple[str, Callable[[int], str]]] = {
    "push": (PUSH, lambda d: f'{{"user_id": "alice", "data": {nested_list(d)}}}'),
    "batch": (
        BATCH,
        lambda d: f'{{"messages": [{{"user_id": "alice", "data": {nested_list(d)}}}]}}',
    ),
}


@pytest.mark.parametrize("case", list(DEEP_BODIES))
def test_data_nested_just_under_the_parsers_limit_is_never_a_500(client, case):
    """Every depth from "too deep to parse" down to "stored": 400 or 202.

    A depth the parser accepts must not overflow the stack further in, where
    the data is encoded for the database and for the frames."""
    path, body_for = DEEP_BODIES[case]
    outcomes: dict[int, int] = {}
    for depth in range(1100, 0, -1):
        status = post_raw(client, path, body_for(depth), "application/json")
        outcomes[depth] = status.status_code
        if status.status_code == 202:
            break
    server_errors = sorted(d for d, s in outcomes.items() if s >= 500)
    assert not server_errors, f"5xx at nesting depths {server_errors}"
    assert set(outcomes.values()) <= {202, 400}, outcomes


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1e999999"])
def test_number_that_overflows_a_double_is_refused(client, number):
    raw = f'{{"user_id": "alice", "data": {{"n": {number}}}}}'
    # Refused by the JSON parser itself, before any field is looked at.
    body = assert_error(post_raw(client, PUSH, raw, "application/json"), 400, "invalid")
    assert body["detail"]["body"][0]["code"] == "parse_error"


# --- the operations API's query strings and path ids ------------------------------


def short_id(query: str) -> str:
    name, _, value = query.partition("=")
    return query if len(value) < 20 else f"{name}={len(value)}-chars"


@pytest.mark.parametrize(
    "query",
    [
        "limit=-1",
        "limit=abc",
        "limit=0",
        "limit=1001",
        "limit=" + "9" * 40,
        "limit=" + "9" * 5000,
        "limit=%EF%BC%91",  # FULLWIDTH DIGIT ONE
        "after_seq=-5",
        "after_seq=1.5",
        "after_seq=" + "9" * 40,
        "after_seq=" + "9" * 5000,
        "after_seq=%00",
    ],
    ids=short_id,
)
def test_bad_history_query_is_400(client, query):
    response = client.get(f"/api/users/alice/messages?{query}")
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize(
    "query",
    [
        "offset=-1",
        "offset=x",
        "limit=" + "9" * 40,
        "limit=%C2%B2",
        "offset=" + "9" * 5000,
    ],
    ids=short_id,
)
def test_bad_online_users_query_is_400(client, query):
    assert_error(client.get(f"/api/users/online?{query}"), 400, "invalid")


@pytest.mark.parametrize(
    "user_id", ["-alice", "a" * 65, "al%20ice", "%C3%A9", "%00", "a%2Fb"]
)
@pytest.mark.parametrize("suffix", ["connections", "messages"])
def test_invalid_user_id_in_an_operations_path_is_400_or_404(client, user_id, suffix):
    response = client.get(f"/api/users/{user_id}/{suffix}")
    assert response.status_code in (400, 404), response.content
    assert set(response.json()) == {"error", "message", "detail"}


def test_invalid_user_id_in_disconnect_is_refused(client):
    response = client.post("/api/users/-alice/disconnect")
    assert_error(response, 400, "invalid")


# --- credentials ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + "brk_" + "a" * 100_000,
        "Bearer brk_12345678_" + "\u00ff" * 43,
        "Bearer brk_12345678_\x00",
        "Bearer\tbrk_12345678_" + "a" * 43,
        "bearer brk_12345678_",
        "Bearer " + "." * 5000,
    ],
    ids=["huge", "latin1", "nul", "tab", "empty-secret", "dots"],
)
def test_malformed_api_key_is_401_in_token_mode(client, settings, authorization):
    settings.BRIDGE_AUTH_MODE = "token"
    response = client.post(
        PUSH,
        data=json.dumps({"user_id": "alice", "message": "x"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=authorization,
    )
    assert_error(response, 401, "not_authenticated")


# --- WebSocket ---------------------------------------------------------------------

Opener = Callable[..., Awaitable[WebsocketCommunicator]]


@pytest.fixture
async def open_ws() -> AsyncIterator[Opener]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(query: str, **kwargs: Any) -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(application, f"/ws?{query}", **kwargs)
        opened.append(communicator)
        accepted, _ = await communicator.connect(timeout=TIMEOUT)
        assert accepted
        return communicator

    yield open_socket
    for communicator in opened:
        if not communicator.future.done():
            await communicator.disconnect(timeout=TIMEOUT)


async def receive(communicator: WebsocketCommunicator) -> dict[str, Any]:
    return json.loads(await communicator.receive_from(timeout=TIMEOUT))


async def connected(open_ws: Opener, query: str = "user_id=alice"):
    communicator = await open_ws(query)
    frame = await receive(communicator)
    assert frame["type"] == "connected", frame
    return communicator


async def assert_still_open(communicator: WebsocketCommunicator) -> None:
    await communicator.send_to(text_data='{"type": "ping"}')
    assert (await receive(communicator))["type"] == "pong"


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"a": ' * 100_000, '{"type": "message", "data": ' + "[" * 99_000],
    ids=["deep-list", "deep-object", "deep-in-field"],
)
async def test_deeply_nested_frame_is_invalid_json_and_the_socket_stays_open(
    open_ws, settings, text
):
    # Raised so that the frame reaches the parser instead of closing with 1009.
    settings.BRIDGE_MAX_FRAME_BYTES = 1_000_000
    communicator = await connected(open_ws)
    await communicator.send_to(text_data=text)
    error = await receive(communicator)
    assert (error["type"], error["code"]) == ("error", "invalid_json")
    await assert_still_open(communicator)


async def test_message_data_nested_just_under_the_parsers_limit_never_kills_the_socket(
    open_ws,
):
    """Every depth from "too deep to parse" down to "delivered": error or ack."""
    await PublicAccount.objects.aget_or_create(handle="ci_bot")
    communicator, refused_here = await connected(open_ws, "user_id=deep"), 0
    for depth in range(1100, 0, -1):
        if refused_here == 15:  # the 20th refused frame closes the socket (4400)
            await communicator.disconnect(timeout=TIMEOUT)
            communicator, refused_here = await connected(open_ws, "user_id=deep"), 0
        nested = '{"a": ' * depth + "1" + "}" * depth
        await communicator.send_to(
            text_data=f'{{"type": "message", "text": "@ci_bot hi", "data": {nested}}}'
        )
        try:
            reply = await receive(communicator)
        except Exception as exc:  # the consumer died: its error is re-raised here
            pytest.fail(f"no reply to data nested {depth} deep: {exc!r}")
        assert reply["type"] in ("ack", "error"), (depth, reply)
        if reply["type"] == "ack":
            break
        assert reply["code"] == "invalid_json", (depth, reply)
        refused_here += 1
    await assert_still_open(communicator)


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "message", "text": "@ci_bot \\u0000"}',
        '{"type": "message", "text": "@ci_bot hi", "data": {"\\u0000": 1}}',
        '{"type": "message", "text": "@ci_bot hi", "data": {"a": ["\\u0000"]}}',
        '{"type": "ping", "\\u0000": 1}',
    ],
    ids=["text", "data-key", "deep-in-data", "unknown-key"],
)
async def test_nul_in_a_frame_is_invalid_json_and_nothing_is_stored(open_ws, frame):
    await PublicAccount.objects.aget_or_create(handle="ci_bot")
    communicator = await connected(open_ws)
    await communicator.send_to(text_data=frame)
    error = await receive(communicator)
    assert (error["type"], error["code"]) == ("error", "invalid_json"), error
    await assert_still_open(communicator)
    assert not await Message.objects.aexists()


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
async def test_message_data_with_a_number_json_cannot_carry_is_refused_as_invalid(
    open_ws, number
):
    await PublicAccount.objects.aget_or_create(handle="ci_bot")
    communicator = await connected(open_ws)
    data = f'{{"n": {number}}}'
    await communicator.send_to(
        text_data=f'{{"type": "message", "text": "@ci_bot hi", "data": {data}}}'
    )
    error = await receive(communicator)
    # Not `unavailable`: retrying the same frame can never succeed.
    assert (error["type"], error["code"]) in {
        ("error", "invalid_json"),
        ("error", "invalid_frame"),
    }, error
    await assert_still_open(communicator)


async def close_code(communicator: WebsocketCommunicator) -> int:
    output = await communicator.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close", output
    return output.get("code", 1000)


async def refused(open_ws: Opener, query: str, **kwargs: Any) -> tuple[str, int]:
    communicator = await open_ws(query, **kwargs)
    error = await receive(communicator)
    assert error["type"] == "error", error
    return error["code"], await close_code(communicator)


@pytest.mark.parametrize(
    "query",
    [
        "user_id=" + "a" * 100_000,
        "user_id=alice&last_seq=" + "9" * 5000,
        "user_id=" + "%FF" * 1000,
        "user_id=alice&" + "&".join(f"k{n}=v" for n in range(5000)),
        "user_id=%00",
    ],
    ids=["huge-user-id", "huge-last-seq", "not-utf8", "many-params", "nul"],
)
async def test_hostile_handshake_query_is_4400(open_ws, query):
    # "many-params" has a valid user_id: it must simply connect.
    communicator = await open_ws(query)
    frame = await receive(communicator)
    if query.startswith("user_id=alice&k0"):
        assert frame["type"] == "connected", frame
        return
    assert (frame["code"], await close_code(communicator)) == ("bad_request", 4400)


@pytest.mark.parametrize(
    ("query", "kwargs"),
    [
        ("token=" + "." * 10_000, {}),
        ("token=brk_" + "a" * 10_000, {}),
        ("token=brk_12345678_" + "%00" * 43, {}),
        ("token=%C3%A9.%C3%A9", {}),
        ("", {"headers": [(b"authorization", b"Bearer " + b"\xff" * 100)]}),
        ("", {"subprotocols": ["bridge.v1", "token." + "x" * 10_000]}),
        ("", {"headers": [(b"cookie", b"sessionid=" + b"x" * 10_000)]}),
    ],
    ids=[
        "dots",
        "huge-key",
        "nul-key",
        "non-ascii",
        "latin1-bearer",
        "huge-subprotocol",
        "huge-cookie",
    ],
)
async def test_hostile_credentials_are_4401_in_token_mode(
    open_ws, settings, query, kwargs
):
    settings.BRIDGE_AUTH_MODE = "token"
    assert await refused(open_ws, query, **kwargs) == ("unauthenticated", 4401)


@pytest.mark.parametrize(
    "origin",
    [
        b"https://" + b"a" * 10_000 + b".test",
        b"\xff\xfe",
        b"https://app.example.com\x00",
    ],
    ids=["huge", "latin1", "nul"],
)
async def test_hostile_origin_is_4403(open_ws, settings, origin):
    settings.BRIDGE_ALLOWED_ORIGINS = ["https://app.example.com"]
    code = await refused(
        open_ws, "user_id=alice", headers=[(b"host", b"localhost"), (b"origin", origin)]
    )
    assert code == ("forbidden", 4403)
