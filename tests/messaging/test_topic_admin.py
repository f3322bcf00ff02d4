"""Operators create topic namespaces and members in the admin (SPEC §8); the
forms refuse names the API would refuse. `admin_client` is pytest-django's
superuser Client."""

from __future__ import annotations

from unittest import mock

import pytest
from django.test import Client

from accounts.models import ApiKey
from messaging.models import TopicMember, TopicNamespace
from messaging.streams import publish
from messaging.streams.namespaces import forget_cached_rules, namespace_rules

pytestmark = pytest.mark.django_db

NAMESPACES = "/admin/messaging/topicnamespace/"
MEMBERS = "/admin/messaging/topicmember/"


def namespace_form(**overrides) -> dict:
    return {
        "name": "room",
        "subscribe": "members",
        "client_publish": "none",
        "history_size": "1000",
        "history_ttl": "604800",
        "presence": "on",
        **overrides,
    }


def form_errors(response) -> dict:
    assert response.status_code == 200, response  # the form again, not a redirect
    return response.context["adminform"].form.errors


def test_an_admin_creates_a_namespace_and_its_rules_apply_at_once(
    admin_client: Client,
):
    forget_cached_rules()
    assert namespace_rules("room") is None
    response = admin_client.post(
        f"{NAMESPACES}add/",
        namespace_form(subscribe="public", history_size="0", join_leave="on"),
    )
    assert response.status_code == 302, form_errors(response)
    row = TopicNamespace.objects.get(name="room")
    assert (row.subscribe, row.history_size, row.join_leave, row.receipts) == (
        "public",
        0,
        True,
        False,
    )
    assert namespace_rules("room").live_only


@pytest.mark.parametrize("name", ["user", "Room", "9room", "a b", "x" * 33, ""])
def test_the_namespace_form_refuses_a_bad_name(admin_client: Client, name):
    response = admin_client.post(f"{NAMESPACES}add/", namespace_form(name=name))
    assert "name" in form_errors(response)
    assert not TopicNamespace.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("subscribe", "everyone"), ("history_size", "-1"), ("history_ttl", "0")],
)
def test_the_namespace_form_refuses_bad_settings(admin_client: Client, field, value):
    response = admin_client.post(f"{NAMESPACES}add/", namespace_form(**{field: value}))
    assert field in form_errors(response)


def test_an_admin_adds_a_member(admin_client: Client):
    response = admin_client.post(
        f"{MEMBERS}add/", {"topic": "room:a@b=c", "user_id": "alice"}
    )
    assert response.status_code == 302, form_errors(response)
    assert list(TopicMember.objects.values_list("topic", "user_id")) == [
        ("room:a@b=c", "alice")
    ]
    assert admin_client.get(MEMBERS).status_code == 200


@pytest.mark.parametrize(
    ("topic", "user_id", "bad"),
    [
        ("room", "alice", "topic"),
        ("user:bob", "alice", "topic"),
        ("Room:x", "alice", "topic"),
        ("room:a b", "alice", "topic"),
        ("room:x", "-alice", "user_id"),
        ("room:x", "al ice", "user_id"),
    ],
)
def test_the_member_form_refuses_bad_names(admin_client: Client, topic, user_id, bad):
    response = admin_client.post(f"{MEMBERS}add/", {"topic": topic, "user_id": user_id})
    assert bad in form_errors(response)
    assert not TopicMember.objects.exists()


def test_the_member_form_refuses_a_duplicate(admin_client: Client):
    TopicMember.objects.create(topic="room:x", user_id="alice")
    response = admin_client.post(
        f"{MEMBERS}add/", {"topic": "room:x", "user_id": "alice"}
    )
    assert form_errors(response)
    assert TopicMember.objects.count() == 1


def test_an_admin_creates_an_api_key_with_the_topics_permission(admin_client: Client):
    response = admin_client.post(
        "/admin/accounts/apikey/add/",
        {"name": "membership", "service": "chat-app", "can_manage_topics": "on"},
    )
    assert response.status_code == 200, response  # the page that shows the key once
    key = ApiKey.objects.get(name="membership")
    assert key.permissions == frozenset({"topics"})


def test_create_api_key_grants_the_topics_permission():
    import io

    from django.core.management import call_command

    from accounts.keys import api_key_authenticate

    out = io.StringIO()
    call_command("create_api_key", "--service", "chat", "--perm", "topics", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    assert api_key_authenticate(raw).permissions == frozenset({"topics"})


def test_deleting_a_member_in_the_admin_ends_their_subscriptions(
    admin_client: Client, django_capture_on_commit_callbacks
):
    member = TopicMember.objects.create(topic="room:9", user_id="ann")
    with (
        mock.patch.object(publish, "end_subscriptions_blocking") as end,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = admin_client.post(f"{MEMBERS}{member.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response
    assert not TopicMember.objects.exists()
    end.assert_called_once_with(user_id="ann", topic="room:9", reason="removed")


def test_deleting_members_in_bulk_ends_each_ones_subscriptions(
    admin_client: Client, django_capture_on_commit_callbacks
):
    for user in ("ann", "bob"):
        TopicMember.objects.create(topic="room:9", user_id=user)
    with (
        mock.patch.object(publish, "end_subscriptions_blocking") as end,
        django_capture_on_commit_callbacks(execute=True),
    ):
        admin_client.post(
            MEMBERS,
            {
                "action": "delete_selected",
                "_selected_action": list(
                    TopicMember.objects.values_list("pk", flat=True)
                ),
                "post": "yes",
            },
        )
    assert not TopicMember.objects.exists()
    assert sorted(c.kwargs["user_id"] for c in end.call_args_list) == ["ann", "bob"]


def test_a_membership_cannot_be_moved_in_the_admin(admin_client: Client):
    member = TopicMember.objects.create(topic="room:9", user_id="ann")
    admin_client.post(
        f"{MEMBERS}{member.pk}/change/", {"topic": "room:10", "user_id": "bob"}
    )
    member.refresh_from_db()
    assert (member.topic, member.user_id) == ("room:9", "ann")
