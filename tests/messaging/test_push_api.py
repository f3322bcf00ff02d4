"""POST /sse/push (SPEC §6): validation, reply shape, storage, the one error shape."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client

from accounts.models import PublicAccount
from messaging.models import Message, StreamEntry

pytestmark = pytest.mark.django_db(transaction=True)

PUSH = "/sse/push"


def post(client: Client, body: Any, **kwargs: Any):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(PUSH, data=raw, content_type="application/json", **kwargs)


def assert_error(response, status: int, code: str) -> dict:
    """SPEC §6: every error is exactly {"error", "message", "detail"} as JSON."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message", "detail"}, body
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["detail"], dict)
    return body


def accepted(response) -> dict:
    assert response.status_code == 202, response.content
    return response.json()


@pytest.fixture
def client() -> Client:
    # A server error comes back as a 500 response to assert on, not an exception.
    return Client(raise_request_exception=False)


# --- success ----------------------------------------------------------------------


def test_push_to_one_user_replies_202_with_spec_shape(client):
    # Presence lives in Redis, which outlives each test: an id no socket ever uses.
    reply = accepted(post(client, {"user_id": "never_online", "message": "hi"}))
    assert set(reply) == {"id", "recipients"}
    uuid.UUID(reply["id"])
    assert reply["recipients"] == [
        {"user_id": "never_online", "seq": 1, "online": False, "connections": 0}
    ]


def test_push_is_stored_with_event_data_and_sender(client):
    reply = accepted(
        post(
            client,
            {
                "user_id": "alice",
                "event": "notification",
                "data": {"text": "build #42 passed", "n": [1, 2]},
                "sender": "ci_bot",
            },
        )
    )
    message = Message.objects.get(id=reply["id"])
    assert message.event == "notification"
    assert message.sender == "ci_bot"
    assert message.data == {"text": "build #42 passed", "n": [1, 2]}
    entry = StreamEntry.objects.get(message=message)
    assert (entry.stream, entry.seq) == ("user:alice", 1)


def test_message_is_shorthand_for_data_text_and_event_defaults_to_message(client):
    reply = accepted(post(client, {"user_id": "alice", "message": "hello"}))
    message = Message.objects.get(id=reply["id"])
    assert message.data == {"text": "hello"}
    assert message.event == "message"
    assert message.sender is None


@pytest.mark.parametrize("data", [None, 0, "text", [1, "two"], {"nested": {"a": []}}])
def test_data_may_be_any_json_value(client, data):
    reply = accepted(post(client, {"user_id": "alice", "data": data}))
    assert Message.objects.get(id=reply["id"]).data == data


def test_seq_increments_per_recipient(client):
    seqs = [
        accepted(post(client, {"user_id": user, "message": "x"}))["recipients"][0][
            "seq"
        ]
        for user in ("alice", "alice", "bob", "alice", "bob")
    ]
    assert seqs == [1, 2, 1, 3, 2]


def test_user_ids_targets_each_user_in_request_order_with_one_message_id(client):
    accepted(post(client, {"user_id": "bob", "message": "first"}))
    reply = accepted(
        post(client, {"user_ids": ["carol", "bob", "alice"], "message": "x"})
    )
    assert [(r["user_id"], r["seq"]) for r in reply["recipients"]] == [
        ("carol", 1),
        ("bob", 2),
        ("alice", 1),
    ]
    assert Message.objects.filter(id=reply["id"]).count() == 1
    assert StreamEntry.objects.filter(message_id=reply["id"]).count() == 3


def test_persist_false_gives_null_seqs_and_stores_nothing(client):
    reply = accepted(
        post(client, {"user_ids": ["alice", "bob"], "message": "x", "persist": False})
    )
    assert [r["seq"] for r in reply["recipients"]] == [None, None]
    assert Message.objects.count() == 0
    assert StreamEntry.objects.count() == 0


def test_live_only_push_does_not_use_up_a_seq(client):
    post(client, {"user_id": "alice", "message": "x", "persist": False})
    reply = accepted(post(client, {"user_id": "alice", "message": "y"}))
    assert reply["recipients"][0]["seq"] == 1


def test_broadcast_replies_with_online_users_and_stores_nothing(client):
    reply = accepted(post(client, {"broadcast": True, "message": "maintenance"}))
    assert set(reply) == {"id", "broadcast", "online_users"}
    uuid.UUID(reply["id"])
    assert reply["broadcast"] is True
    assert isinstance(reply["online_users"], int) and reply["online_users"] >= 0
    assert Message.objects.count() == 0


def test_broadcast_false_with_a_user_id_is_a_direct_push(client):
    reply = accepted(post(client, {"user_id": "alice", "broadcast": False, "data": 1}))
    assert reply["recipients"][0]["user_id"] == "alice"


def test_content_type_with_charset_is_accepted(client):
    response = client.post(
        PUSH,
        data=json.dumps({"user_id": "alice", "message": "x"}),
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 202, response.content


def test_push_needs_no_csrf_token(client):
    strict = Client(enforce_csrf_checks=True)
    assert post(strict, {"user_id": "alice", "message": "x"}).status_code == 202


def test_non_ascii_text_round_trips(client):
    reply = accepted(post(client, {"user_id": "alice", "message": "héllo ✓ 😀"}))
    assert Message.objects.get(id=reply["id"]).data == {"text": "héllo ✓ 😀"}


# --- target and payload rules -----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"message": "x"},
        {"broadcast": False, "message": "x"},
        {"user_id": "alice", "user_ids": ["bob"], "message": "x"},
        {"user_id": "alice", "broadcast": True, "message": "x"},
        {"user_ids": ["bob"], "broadcast": True, "message": "x"},
    ],
    ids=["none", "broadcast-false", "user_id+user_ids", "user_id+broadcast", "ids+bc"],
)
def test_exactly_one_target_is_required(client, body):
    assert_error(post(client, body), 400, "invalid")
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "alice"},
        {"user_id": "alice", "data": {"text": "x"}, "message": "x"},
        {"user_id": "alice", "data": None, "message": "x"},
    ],
    ids=["neither", "both", "null-data-and-message"],
)
def test_exactly_one_of_data_or_message_is_required(client, body):
    assert_error(post(client, body), 400, "invalid")


def test_duplicate_user_ids_are_refused(client):
    body = assert_error(
        post(client, {"user_ids": ["alice", "bob", "alice"], "message": "x"}),
        400,
        "invalid",
    )
    assert "user_ids" in body["detail"]
    assert Message.objects.count() == 0


def test_empty_user_ids_is_refused(client):
    assert_error(post(client, {"user_ids": [], "message": "x"}), 400, "invalid")


def test_more_than_1000_user_ids_is_refused(client):
    ids = [f"user{i}" for i in range(1001)]
    body = assert_error(post(client, {"user_ids": ids, "message": "x"}), 400, "invalid")
    assert "user_ids" in body["detail"]


def test_1000_user_ids_are_accepted(client):
    ids = [f"user{i}" for i in range(1000)]
    reply = accepted(post(client, {"user_ids": ids, "message": "x"}))
    assert [r["user_id"] for r in reply["recipients"]] == ids


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user_id", 42),
        ("user_id", None),
        ("user_id", ["alice"]),
        ("user_id", "-alice"),
        ("user_id", "alice\n"),
        ("user_id", "a" * 65),
        ("user_id", "al ice"),
    ],
)
def test_invalid_user_id_is_refused_naming_the_field(client, field, value):
    body = assert_error(post(client, {field: value, "message": "x"}), 400, "invalid")
    assert field in body["detail"]


@pytest.mark.parametrize("user_ids", ["alice", [42], ["alice", None], ["-x"], {"a": 1}])
def test_invalid_user_ids_are_refused(client, user_ids):
    body = assert_error(
        post(client, {"user_ids": user_ids, "message": "x"}), 400, "invalid"
    )
    assert "user_ids" in body["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("broadcast", "true"),
        ("broadcast", 1),
        ("persist", "false"),
        ("persist", 0),
        ("message", 5),
        ("message", {"text": "x"}),
        ("sender", 7),
        ("sender", "not a user"),
        ("event", 5),
    ],
)
def test_wrong_field_types_are_refused_naming_the_field(client, field, value):
    body = {"user_id": "alice", "message": "x", field: value}
    if field == "broadcast":
        del body["user_id"]
    response = assert_error(post(client, body), 400, "invalid")
    assert field in response["detail"]


@pytest.mark.parametrize("event", ["notification", "a", "build.done", "ci:job_1-ok"])
def test_valid_event_names_are_accepted(client, event):
    reply = accepted(post(client, {"user_id": "alice", "message": "x", "event": event}))
    assert Message.objects.get(id=reply["id"]).event == event


@pytest.mark.parametrize(
    "event", ["", "Notification", "1abc", "_x", "a b", "a" * 65, "ok\n", "é"]
)
def test_invalid_event_names_are_refused(client, event):
    body = assert_error(
        post(client, {"user_id": "alice", "message": "x", "event": event}),
        400,
        "invalid",
    )
    assert "event" in body["detail"]


def test_unknown_field_is_refused_naming_it(client):
    body = assert_error(
        post(client, {"user_id": "alice", "message": "x", "colour": "red"}),
        400,
        "invalid",
    )
    assert "colour" in body["detail"]


def test_field_errors_carry_machine_codes(client):
    body = assert_error(post(client, {"user_id": "-x", "message": "x"}), 400, "invalid")
    errors = body["detail"]["user_id"]
    assert isinstance(errors, list) and errors
    assert all(set(error) == {"code", "message"} for error in errors)


# --- sizes ------------------------------------------------------------------------


def test_data_over_max_message_bytes_is_400_naming_data(client, settings):
    settings.BRIDGE_MAX_MESSAGE_BYTES = 100
    body = assert_error(
        post(client, {"user_id": "alice", "data": "x" * 99}), 400, "invalid"
    )
    assert "data" in body["detail"]
    assert Message.objects.count() == 0


def test_data_of_exactly_max_message_bytes_serialized_is_accepted(client, settings):
    settings.BRIDGE_MAX_MESSAGE_BYTES = 100
    # '"' + 98 chars + '"' is 100 bytes.
    accepted(post(client, {"user_id": "alice", "data": "x" * 98}))


def test_message_size_is_counted_in_utf8_bytes(client, settings):
    settings.BRIDGE_MAX_MESSAGE_BYTES = 100
    # 50 two-byte characters: 100 bytes of text, over the limit once quoted.
    body = assert_error(
        post(client, {"user_id": "alice", "data": "é" * 50}), 400, "invalid"
    )
    assert "data" in body["detail"]


def test_message_over_max_message_bytes_is_400_naming_message(client, settings):
    settings.BRIDGE_MAX_MESSAGE_BYTES = 100
    body = assert_error(
        post(client, {"user_id": "alice", "message": "x" * 200}), 400, "invalid"
    )
    assert "message" in body["detail"]


def test_body_over_max_body_bytes_is_json_413(client, settings):
    settings.BRIDGE_MAX_BODY_BYTES = 2048
    body = assert_error(
        post(client, {"user_id": "alice", "data": "x" * 3000}), 413, "too_large"
    )
    assert body["detail"] == {}
    assert Message.objects.count() == 0


def test_body_over_default_1_mib_is_json_413(client):
    response = post(client, {"user_id": "alice", "data": "x" * (1024 * 1024)})
    assert_error(response, 413, "too_large")


# --- malformed bodies -------------------------------------------------------------


def test_non_utf8_body_is_400(client):
    assert_error(
        post(client, b'{"user_id": "alice", "message": "\xff"}'), 400, "invalid"
    )


@pytest.mark.parametrize(
    "raw",
    ["[" * 100000, '{"a": ' * 100000, '{"user_id": "alice", "data": ' + "[" * 50000],
)
def test_deeply_nested_json_is_400_not_500(client, raw):
    assert_error(post(client, raw), 400, "invalid")


@pytest.mark.parametrize(
    "raw",
    [
        "{",
        "not json",
        '{"user_id": "alice", "data": NaN}',
        '{"user_id": "alice", "data": Infinity}',
        '{"user_id": "alice", "data": ' + "9" * 5000 + "}",
    ],
)
def test_invalid_json_is_400(client, raw):
    assert_error(post(client, raw), 400, "invalid")


@pytest.mark.parametrize(
    "raw",
    [
        '{"user_id": "alice", "data": "x\\udfffy"}',
        '{"user_id": "alice", "data": {"k\\ud800": 1}}',
        '{"user_id": "alice", "message": "x\\ud800"}',
    ],
    ids=["in-data", "in-data-key", "in-message"],
)
def test_lone_surrogate_escape_is_400_not_500(client, raw):
    # Valid JSON text, but no UTF-8 encoding exists for the string it decodes to.
    assert_error(post(client, raw), 400, "invalid")
    assert Message.objects.count() == 0


@pytest.mark.parametrize("raw", ["[]", "null", "1", '"alice"', "true", "[{}]"])
def test_json_that_is_not_an_object_is_400(client, raw):
    assert_error(post(client, raw), 400, "invalid")


def test_empty_json_body_is_400(client):
    # The test client drops the Content-Type of an empty body; set it by hand.
    response = client.generic("POST", PUSH, data="", CONTENT_TYPE="application/json")
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", ""],
)
def test_wrong_or_missing_content_type_is_415(client, content_type):
    response = client.generic(
        "POST",
        PUSH,
        data=json.dumps({"user_id": "alice", "message": "x"}),
        content_type=content_type,
    )
    assert_error(response, 415, "unsupported_media_type")
    assert Message.objects.count() == 0


def test_multipart_body_is_415(client):
    response = client.post(PUSH, data={"user_id": "alice", "message": "x"})
    assert_error(response, 415, "unsupported_media_type")


# --- methods and URLs -------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_on_push_are_json_405(client, method):
    response = getattr(client, method)(PUSH)
    assert_error(response, 405, "method_not_allowed")


@pytest.mark.parametrize("path", ["/nope", "/sse/push/", "/sse/pushx", "/api/nothing"])
def test_unknown_url_is_json_404(client, path):
    assert_error(client.get(path), 404, "not_found")
    assert_error(
        client.post(path, data="{}", content_type="application/json"), 404, "not_found"
    )


API_PATHS = ["/sse/push/", "/sse/pushx", "/sse/no-such-route", "/sse", "/api"]
API_PATHS += ["/api/no-such-route", "/api/users/alice/nothing"]


@pytest.mark.parametrize("path", API_PATHS)
def test_unknown_api_url_is_json_404_with_debug_on(client, settings, path):
    # `make run` runs with DEBUG=1, where Django answers an unmatched URL with
    # its HTML debug page unless a URL pattern catches it.
    settings.DEBUG = True
    assert_error(client.get(path), 404, "not_found")
    assert_error(
        client.post(path, data="{}", content_type="application/json"), 404, "not_found"
    )


# --- token mode (SPEC §4) -----------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"HTTP_AUTHORIZATION": "Bearer not-a-real-key"}, {"HTTP_AUTHORIZATION": "x"}],
    ids=["no-key", "unknown-key", "not-bearer"],
)
def test_push_without_a_valid_key_in_token_mode_is_401(client, settings, headers):
    settings.BRIDGE_AUTH_MODE = "token"
    response = post(client, {"user_id": "alice", "message": "x"}, **headers)
    assert_error(response, 401, "not_authenticated")
    assert Message.objects.count() == 0


def test_mentions_past_max_mentions_are_plain_text_not_refused(client, settings):
    settings.BRIDGE_MAX_MENTIONS = 2
    for handle in ("m1_bot", "m2_bot", "m3_bot"):
        PublicAccount.objects.create(handle=handle)
    text = "@m3_bot @m1_bot @m2_bot " + " ".join(f"@u{i}" for i in range(5000))

    reply = accepted(post(client, {"user_id": "alice", "message": text}))

    assert [(r["user_id"], r.get("via")) for r in reply["recipients"]] == [
        ("alice", None),
        ("m3_bot", "mention"),
        ("m1_bot", "mention"),
    ]
