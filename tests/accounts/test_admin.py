"""Operators manage public accounts in the Django admin (SPEC §1).

`admin_client` (pytest-django) is a test Client logged in as a superuser.
"""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from django.utils import timezone

from accounts import selectors
from accounts.models import PublicAccount
from messaging.models import Message, StreamEntry
from messaging.streams.names import personal_stream

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/publicaccount/"


def listed_handles(response) -> list[str]:
    assert response.status_code == 200, response
    return [account.handle for account in response.context["cl"].result_list]


def store(*, sender: str | None, recipients: list[str], text: str) -> Message:
    message = Message.objects.create(
        id=uuid.uuid4(),
        event="message",
        sender=sender,
        data={"text": text},
        created_at=timezone.now(),
    )
    for user_id in recipients:
        seq = StreamEntry.objects.filter(stream=personal_stream(user_id)).count() + 1
        StreamEntry.objects.create(
            message=message, stream=personal_stream(user_id), seq=seq
        )
    return message


def test_changelist_lists_every_handle(admin_client: Client) -> None:
    response = admin_client.get(CHANGELIST)

    assert listed_handles(response) == [
        "ci_bot",
        "email_bot",
        "notification_bot",
        "system_bot",
    ]
    assert b"ci_bot" in response.content


def test_search_finds_accounts_by_handle(admin_client: Client) -> None:
    assert listed_handles(admin_client.get(CHANGELIST, {"q": "email"})) == ["email_bot"]


def test_filter_by_inactive_lists_only_deactivated_accounts(
    admin_client: Client,
) -> None:
    PublicAccount.objects.filter(handle="system_bot").update(is_active=False)
    # The sidebar offers the filter ...
    assert b'href="?is_active__exact=0"' in admin_client.get(CHANGELIST).content

    # ... and it selects by the flag.
    inactive = admin_client.get(CHANGELIST, {"is_active__exact": "0"})
    active = admin_client.get(CHANGELIST, {"is_active__exact": "1"})

    assert listed_handles(inactive) == ["system_bot"]
    assert listed_handles(active) == ["ci_bot", "email_bot", "notification_bot"]


def test_deactivate_and_activate_actions_change_the_flag_and_mentions(
    admin_client: Client,
) -> None:
    ci_bot = PublicAccount.objects.get(handle="ci_bot")
    assert selectors.resolve_mentions(["ci_bot"]) == ["ci_bot"]  # cache now warm

    response = admin_client.post(
        CHANGELIST, {"action": "deactivate", "_selected_action": [ci_bot.pk]}
    )
    assert response.status_code == 302, response
    ci_bot.refresh_from_db()
    assert ci_bot.is_active is False
    # The operator's change is effective at once in this process.
    assert selectors.resolve_mentions(["ci_bot"]) == []
    # The other accounts were not selected and are untouched.
    assert PublicAccount.objects.filter(is_active=True).count() == 3

    response = admin_client.post(
        CHANGELIST, {"action": "activate", "_selected_action": [ci_bot.pk]}
    )
    assert response.status_code == 302, response
    ci_bot.refresh_from_db()
    assert ci_bot.is_active is True
    assert selectors.resolve_mentions(["ci_bot"]) == ["ci_bot"]


@pytest.mark.parametrize(
    ("handle", "error"),
    [
        ("CI_BOT", "A public account with this handle exists."),
        ("bad handle", "A handle is a user id"),
    ],
)
def test_adding_a_clashing_or_malformed_handle_shows_a_form_error(
    admin_client: Client, handle: str, error: str
) -> None:
    response = admin_client.post(
        f"{CHANGELIST}add/", {"handle": handle, "is_active": "on"}
    )

    assert response.status_code == 200  # the form again, not a redirect or a 500
    assert error in response.content.decode()
    assert PublicAccount.objects.count() == 4


def test_adding_an_account_makes_it_mentionable(admin_client: Client) -> None:
    assert selectors.resolve_mentions(["deploy_bot"]) == []  # cache now warm

    response = admin_client.post(
        f"{CHANGELIST}add/",
        {"handle": "Deploy_Bot", "display_name": "Deployer", "is_active": "on"},
    )

    assert response.status_code == 302, response.content.decode()[-2000:]
    assert selectors.resolve_mentions(["deploy_bot"]) == ["Deploy_Bot"]


def test_change_page_links_to_the_accounts_messages(admin_client: Client) -> None:
    ci_bot = PublicAccount.objects.get(handle="ci_bot")

    response = admin_client.get(f"{CHANGELIST}{ci_bot.pk}/change/")

    assert response.status_code == 200
    assert (
        b'href="/admin/messaging/streamentry/?stream=user:ci_bot"' in response.content
    )
    assert b'href="/admin/messaging/message/?sender=ci_bot"' in response.content


def test_received_link_lists_only_the_accounts_inbox(admin_client: Client) -> None:
    store(sender="alice", recipients=["ci_bot"], text="@ci_bot run tests")
    store(sender="ci_bot", recipients=["alice"], text="tests passed")
    store(sender=None, recipients=["bob"], text="hello")

    response = admin_client.get(
        "/admin/messaging/streamentry/", {"stream": "user:ci_bot"}
    )

    assert response.status_code == 200
    entries = list(response.context["cl"].result_list)
    assert [(e.stream, e.message.sender) for e in entries] == [("user:ci_bot", "alice")]


def test_sent_link_lists_only_the_accounts_messages(admin_client: Client) -> None:
    store(sender="alice", recipients=["ci_bot"], text="@ci_bot run tests")
    reply = store(sender="ci_bot", recipients=["alice"], text="tests passed")

    response = admin_client.get("/admin/messaging/message/", {"sender": "ci_bot"})

    assert response.status_code == 200
    assert [m.id for m in response.context["cl"].result_list] == [reply.id]


@pytest.mark.parametrize("model", ["message", "streamentry"])
def test_message_store_is_read_only_in_the_admin(
    admin_client: Client, model: str
) -> None:
    message = store(sender="alice", recipients=["ci_bot"], text="@ci_bot hi")
    pk = message.pk if model == "message" else message.stream_entries.get().pk

    assert admin_client.get(f"/admin/messaging/{model}/add/").status_code == 403
    assert admin_client.get(f"/admin/messaging/{model}/").status_code == 200
    # Viewable, but a change is refused and nothing is written.
    assert admin_client.get(f"/admin/messaging/{model}/{pk}/change/").status_code == 200
    response = admin_client.post(
        f"/admin/messaging/{model}/{pk}/change/", {"event": "changed", "seq": 99}
    )
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.event == "message"
    assert message.stream_entries.get().seq == 1
