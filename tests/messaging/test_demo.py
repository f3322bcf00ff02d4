"""The demo page's server side (issue 17): on in open mode or with
BRIDGE_DEMO=1, a 404 otherwise; `POST /demo/join` makes the visitor a member
of the demo rooms and, in token mode, mints its token."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.tokens import token_claims
from messaging.demo import DEMO_ROOMS
from messaging.models import TopicMember

pytestmark = pytest.mark.django_db


def join(client: Client, body) -> object:
    return client.post("/demo/join", data=body, content_type="application/json")


def test_the_page_is_served_in_open_mode(client, settings):
    settings.BRIDGE_DEMO_ENABLED = True
    response = client.get("/demo/")
    assert response.status_code == 200
    assert b"/static/demo/demo.js" in response.content
    assert b'"rooms": ["demo:lobby", "demo:random", "demo:support"]' in response.content


def test_the_page_and_join_are_404_when_the_demo_is_off(client, settings):
    settings.BRIDGE_DEMO_ENABLED = False
    assert client.get("/demo/").status_code == 404
    assert join(client, {"user_id": "alice"}).status_code == 404


def test_join_makes_the_visitor_a_member_of_every_room(client, settings):
    settings.BRIDGE_DEMO_ENABLED = True
    settings.BRIDGE_AUTH_MODE = "open"
    response = join(client, {"user_id": "alice"})
    assert response.status_code == 200
    assert response.json() == {"user_id": "alice", "token": None}
    assert set(
        TopicMember.objects.filter(user_id="alice").values_list("topic", flat=True)
    ) == set(DEMO_ROOMS)
    assert join(client, {"user_id": "alice"}).status_code == 200  # again: fine


def test_join_in_token_mode_mints_a_token_granting_the_demo_rooms(client, settings):
    settings.BRIDGE_DEMO_ENABLED = True
    settings.BRIDGE_AUTH_MODE = "token"
    body = join(client, {"user_id": "bob"}).json()
    claims = token_claims(body["token"])
    assert claims.user_id == "bob"
    assert "demo:*" in claims.topics


@pytest.mark.parametrize(
    "body", [{"user_id": "not valid"}, {"user_id": 7}, {}, "[1]", "nonsense"]
)
def test_join_refuses_a_bad_name_with_the_error_shape(client, settings, body):
    settings.BRIDGE_DEMO_ENABLED = True
    response = join(client, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_join_is_post_only(client, settings):
    settings.BRIDGE_DEMO_ENABLED = True
    assert client.get("/demo/join").status_code == 405


def test_the_page_talks_to_the_example_bot_when_it_is_a_public_account(
    client, settings
):
    from accounts.models import PublicAccount
    from accounts.selectors import invalidate_cache

    settings.BRIDGE_DEMO_ENABLED = True
    assert b'"bot": "ci_bot"' in client.get("/demo/").content
    PublicAccount.objects.create(handle="echo_bot", display_name="Echo")
    invalidate_cache()
    assert b'"bot": "echo_bot"' in client.get("/demo/").content
