"""Who may call which HTTP endpoint in token mode, and what a push says it is
from (SPEC §4, §6).

Personas, each an API key:
- `pusher`: a service key with `push` only; its pushes are anonymous.
- `bot`: ci_bot's key with `push`; its pushes are from ci_bot.
- `relay`: a service key with `push` and `sender`; may name any sender.
- `announcer`: a service key with `push` and `broadcast`.
- `minter`: a service key with `issue_tokens` only.
- `operator`: a service key with `ops` only.
- `revoked`: was a key with every permission.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import AsyncClient, Client

from accounts.keys import api_key_create, api_key_revoke
from accounts.models import ApiKey, PublicAccount
from accounts.tokens import token_user_id
from bridge_project.asgi import application
from messaging.models import Message, StreamEntry

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("default_public_accounts"),
    pytest.mark.timeout(30),
]

PUSH, BATCH, TOKENS = "/sse/push", "/sse/push/batch", "/api/tokens"
PERSONAS: dict[str, tuple[str | None, set[str]]] = {
    "pusher": (None, {"push"}),
    "bot": ("ci_bot", {"push"}),
    "relay": (None, {"push", "sender"}),
    "announcer": (None, {"push", "broadcast"}),
    "minter": (None, {"issue_tokens"}),
    "operator": (None, {"ops"}),
    "revoked": (None, set(ApiKey.PERMISSIONS)),
}


@pytest.fixture(autouse=True)
def token_mode(settings) -> None:
    settings.BRIDGE_AUTH_MODE = "token"


@pytest.fixture
def keys() -> dict[str, str]:
    """Persona -> raw key (made after the previous test's flush)."""
    made = {}
    for persona, (handle, permissions) in PERSONAS.items():
        account = None
        if handle:
            account, _ = PublicAccount.objects.get_or_create(handle=handle)
        created = api_key_create(
            name=persona,
            account=account,
            service="" if account else f"{persona}-service",
            permissions=permissions,
        )
        made[persona] = created.raw
    api_key_revoke(key=ApiKey.objects.get(name="revoked"))
    return made


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def auth(key: str | None) -> dict[str, str]:
    return {} if key is None else {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def post(client: Client, path: str, body: Any, key: str | None = None, **extra):
    return client.post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        **auth(key),
        **extra,
    )


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["detail"], dict)
    return body


def one_push(**fields: Any) -> dict[str, Any]:
    return {"user_id": "alice", "message": "hi", **fields}


BODIES = {PUSH: one_push(), BATCH: {"messages": [one_push()]}}


# --- /sse/push and /sse/push/batch need `push` --------------------------------------


@pytest.mark.parametrize("path", [PUSH, BATCH])
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer brk_00000000_" + "A" * 43,
        "Bearer not-a-key",
        "Bearer",
        "Bearer two parts",
        "Bearer brk_\u00e9\u00e9",
    ],
    ids=["none", "unknown-key", "not-a-key", "empty-bearer", "three-parts", "latin1"],
)
def test_push_without_a_valid_key_is_401(client, keys, path, authorization):
    extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    assert_error(post(client, path, BODIES[path], **extra), 401, "not_authenticated")
    assert not Message.objects.exists()


@pytest.mark.parametrize("key", [None, "brk_00000000_" + "A" * 43], ids=["none", "bad"])
def test_401_tells_the_client_how_to_authenticate(client, keys, key):
    # RFC 9110 §15.5.2: a 401 response MUST send a WWW-Authenticate challenge.
    for path, body in [*BODIES.items(), (TOKENS, {"user_id": "alice"})]:
        response = post(client, path, body, key)
        assert_error(response, 401, "not_authenticated")
        assert response.get("WWW-Authenticate", "").startswith("Bearer"), path


@pytest.mark.parametrize("path", [PUSH, BATCH])
def test_push_with_a_revoked_key_is_401(client, keys, path):
    response = post(client, path, BODIES[path], keys["revoked"])
    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize("path", [PUSH, BATCH])
@pytest.mark.parametrize("persona", ["minter", "operator"])
def test_push_with_a_key_lacking_push_is_403(client, keys, path, persona):
    response = post(client, path, BODIES[path], keys[persona])
    assert_error(response, 403, "permission_denied")
    assert not Message.objects.exists()


@pytest.mark.parametrize("path", [PUSH, BATCH])
def test_push_with_a_push_key_is_accepted(client, keys, path):
    assert post(client, path, BODIES[path], keys["pusher"]).status_code == 202
    assert Message.objects.count() == 1


def test_a_staff_session_may_not_push(client, keys):
    staff = get_user_model().objects.create_user("staffer", is_staff=True)
    client.force_login(staff)
    assert_error(post(client, PUSH, one_push()), 403, "permission_denied")


# --- from: who a push says it is from -----------------------------------------------


def stored_sender(response) -> str | None:
    assert response.status_code == 202, response.content
    return Message.objects.get(id=response.json()["id"]).sender


def test_service_key_push_is_anonymous(client, keys):
    assert stored_sender(post(client, PUSH, one_push(), keys["pusher"])) is None


def test_account_key_push_is_from_the_account(client, keys):
    assert stored_sender(post(client, PUSH, one_push(), keys["bot"])) == "ci_bot"


def test_account_key_batch_items_are_from_the_account(client, keys):
    response = post(client, BATCH, {"messages": [one_push(), one_push()]}, keys["bot"])
    assert response.status_code == 202, response.content
    ids = [result["id"] for result in response.json()["results"]]
    assert [Message.objects.get(id=i).sender for i in ids] == ["ci_bot", "ci_bot"]


@pytest.mark.parametrize("persona", ["pusher", "bot"])
@pytest.mark.parametrize("sender", ["ci_bot", "system_bot", "mallory"])
def test_naming_a_sender_without_the_sender_permission_is_403(
    client, keys, persona, sender
):
    response = post(client, PUSH, one_push(sender=sender), keys[persona])
    body = assert_error(response, 403, "permission_denied")
    assert "sender" in body["message"]
    assert not Message.objects.exists()


def test_batch_item_naming_a_sender_without_permission_refuses_the_whole_batch(
    client, keys
):
    body = {"messages": [one_push(), one_push(sender="system_bot")]}
    assert_error(post(client, BATCH, body, keys["pusher"]), 403, "permission_denied")
    assert not Message.objects.exists()
    assert not StreamEntry.objects.exists()


def test_key_with_sender_permission_may_name_any_sender(client, keys):
    response = post(client, PUSH, one_push(sender="system_bot"), keys["relay"])
    assert stored_sender(response) == "system_bot"


def test_key_with_sender_permission_and_no_sender_is_anonymous(client, keys):
    assert stored_sender(post(client, PUSH, one_push(), keys["relay"])) is None


async def test_delivered_frame_carries_the_named_sender_and_the_accounts_handle(
    keys,
):
    """What a connected client sees in `from` (SPEC §3), end to end in process."""
    token = await _token_for("alice")
    communicator = WebsocketCommunicator(application, f"/ws?token={token}")
    accepted, _ = await communicator.connect(timeout=5)
    assert accepted
    try:
        connected = json.loads(await communicator.receive_from(timeout=5))
        assert connected["type"] == "connected", connected
        http = AsyncClient()
        senders = []
        for persona, extra in [("relay", {"sender": "system_bot"}), ("bot", {})]:
            response = await http.post(
                PUSH,
                data=one_push(**extra),
                content_type="application/json",
                headers={"Authorization": f"Bearer {keys[persona]}"},
            )
            assert response.status_code == 202, response.content
            frame = json.loads(await communicator.receive_from(timeout=5))
            assert frame["type"] == "message", frame
            senders.append(frame["from"])
        assert senders == ["system_bot", "ci_bot"]
    finally:
        await communicator.disconnect(timeout=5)


async def _token_for(user_id: str) -> str:
    """A token from POST /api/tokens, as an upstream service would get one."""
    minter = await sync_to_async(api_key_create)(
        name="async-minter", service="minter2", permissions={"issue_tokens"}
    )
    response = await AsyncClient().post(
        TOKENS,
        data={"user_id": user_id},
        content_type="application/json",
        headers={"Authorization": f"Bearer {minter.raw}"},
    )
    assert response.status_code == 201, response.content
    return response.json()["token"]


# --- broadcast ------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["pusher", "bot", "relay"])
def test_broadcast_without_the_broadcast_permission_is_403(client, keys, persona):
    body = {"broadcast": True, "message": "everyone"}
    assert_error(post(client, PUSH, body, keys[persona]), 403, "permission_denied")


def test_batch_with_a_broadcast_item_needs_the_broadcast_permission(client, keys):
    body = {"messages": [one_push(), {"broadcast": True, "message": "all"}]}
    assert_error(post(client, BATCH, body, keys["pusher"]), 403, "permission_denied")
    assert not Message.objects.exists()


def test_broadcast_with_the_broadcast_permission_is_accepted(client, keys):
    response = post(
        client, PUSH, {"broadcast": True, "message": "all"}, keys["announcer"]
    )
    assert response.status_code == 202, response.content
    assert response.json()["broadcast"] is True


# --- POST /api/tokens needs `issue_tokens` -------------------------------------------


def test_token_minting_with_issue_tokens_gives_a_token_for_the_user(client, keys):
    response = post(client, TOKENS, {"user_id": "alice"}, keys["minter"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    assert token_user_id(body["token"]) == "alice"
    assert body["expires_at"].endswith("Z") or body["expires_at"].endswith("+00:00")


def test_token_minting_without_a_key_is_401(client, keys):
    assert_error(post(client, TOKENS, {"user_id": "alice"}), 401, "not_authenticated")


@pytest.mark.parametrize("persona", ["pusher", "bot", "relay", "announcer", "operator"])
def test_token_minting_without_issue_tokens_is_403(client, keys, persona):
    response = post(client, TOKENS, {"user_id": "alice"}, keys[persona])
    assert_error(response, 403, "permission_denied")


def test_token_minting_refuses_an_invalid_user_id(client, keys):
    response = post(client, TOKENS, {"user_id": "-bad"}, keys["minter"])
    body = assert_error(response, 400, "invalid")
    assert "user_id" in body["detail"]


# --- operations ----------------------------------------------------------------------


def test_metrics_from_an_allowed_address_need_no_key(client, keys, settings):
    settings.BRIDGE_METRICS_ALLOWED_IPS = ["10.1.2.3"]
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    assert b"bridge_" in response.content


def test_metrics_from_another_address_without_a_key_is_refused(client, keys):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    # No credentials at all: 401 tells the client to authenticate (SPEC §6).
    assert_error(response, 401, "not_authenticated")
    assert b"bridge_" not in response.content


@pytest.mark.parametrize("persona", ["pusher", "bot", "announcer", "minter"])
def test_metrics_from_another_address_with_a_non_ops_key_is_403(client, keys, persona):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", **auth(keys[persona]))
    assert_error(response, 403, "permission_denied")


def test_metrics_from_another_address_with_an_ops_key_is_200(client, keys):
    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", **auth(keys["operator"])
    )
    assert response.status_code == 200
    assert b"bridge_connections_open" in response.content


def test_metrics_from_another_address_with_a_staff_session_is_200(client, keys):
    client.force_login(get_user_model().objects.create_user("ops", is_staff=True))
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_metrics_from_another_address_with_a_non_staff_session_is_403(client, keys):
    client.force_login(get_user_model().objects.create_user("someone"))
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert_error(response, 403, "permission_denied")


def test_metrics_with_a_revoked_ops_key_is_401(client, keys):
    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", **auth(keys["revoked"])
    )
    assert_error(response, 401, "not_authenticated")


OPS_ENDPOINTS = [
    ("get", "/api/stats"),
    ("get", "/api/users/online"),
    ("get", "/api/users/alice/connections"),
    ("post", "/api/users/alice/disconnect"),
    ("get", "/api/users/alice/messages"),
]


def call(client: Client, method: str, path: str, key: str | None = None):
    if method == "post":
        return client.post(path, content_type="application/json", **auth(key))
    return client.get(path, **auth(key))


@pytest.mark.parametrize(("method", "path"), OPS_ENDPOINTS)
def test_operations_without_a_key_are_401(client, keys, method, path):
    assert_error(call(client, method, path), 401, "not_authenticated")
    assert_error(call(client, method, path, keys["revoked"]), 401, "not_authenticated")


@pytest.mark.parametrize(("method", "path"), OPS_ENDPOINTS)
def test_operations_with_a_key_lacking_ops_are_403(client, keys, method, path):
    for persona in ["pusher", "bot", "relay", "announcer", "minter"]:
        response = call(client, method, path, keys[persona])
        assert_error(response, 403, "permission_denied")


@pytest.mark.parametrize(("method", "path"), OPS_ENDPOINTS)
def test_operations_with_an_ops_key_are_200(client, keys, method, path):
    response = call(client, method, path, keys["operator"])
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(("method", "path"), OPS_ENDPOINTS)
def test_operations_with_a_staff_session_are_200(client, keys, method, path):
    client.force_login(get_user_model().objects.create_user("ops2", is_staff=True))
    # A browser session is CSRF-checked; the Django test client skips the check.
    assert call(client, method, path).status_code == 200


def test_history_read_with_an_ops_key_shows_the_stored_messages(client, keys):
    assert post(client, PUSH, one_push(message="kept"), keys["bot"]).status_code == 202
    response = client.get("/api/users/alice/messages", **auth(keys["operator"]))
    messages = response.json()["messages"]
    assert [(m["from"], m["data"]) for m in messages] == [("ci_bot", {"text": "kept"})]


@pytest.mark.parametrize("path", ["/health", "/api/schema"])
@pytest.mark.parametrize(
    "authorization", [None, "Bearer brk_00000000_" + "A" * 43], ids=["none", "bad"]
)
def test_health_and_schema_need_no_credentials(client, keys, path, authorization):
    extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = client.get(path, REMOTE_ADDR="203.0.113.9", **extra)
    assert response.status_code == 200, response.content
