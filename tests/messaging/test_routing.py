"""Who receives a message (SPEC §1, §2, §6): pure functions of
messaging.streams.recipients.

Mentioned handles arrive already resolved (canonical spelling, active accounts
only); these tests are about what routing does with them.
"""

from __future__ import annotations

import pytest

from messaging.streams.recipients import (
    DIRECT,
    MENTION,
    Recipient,
    RoutingRefused,
    client_message_recipients,
    decide_recipients,
)


def routes(recipients: list[Recipient]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r.user_id, r.via, r.mentions) for r in recipients]


# --- decide_recipients: the push path -------------------------------------------------


def test_targets_come_first_in_request_order_then_mentions() -> None:
    recipients = decide_recipients(
        targets=["carol", "alice", "bob"], mentioned=["email_bot", "ci_bot"]
    )

    assert routes(recipients) == [
        ("carol", DIRECT, ()),
        ("alice", DIRECT, ()),
        ("bob", DIRECT, ()),
        ("email_bot", MENTION, ("email_bot",)),
        ("ci_bot", MENTION, ("ci_bot",)),
    ]


def test_targets_only_are_direct_copies_with_no_mentions() -> None:
    assert routes(decide_recipients(targets=["alice"])) == [("alice", DIRECT, ())]


def test_a_targeted_account_that_is_also_mentioned_gets_one_direct_copy() -> None:
    recipients = decide_recipients(
        targets=["alice", "ci_bot"], mentioned=["ci_bot", "email_bot"]
    )

    assert routes(recipients) == [
        ("alice", DIRECT, ()),
        ("ci_bot", DIRECT, ()),
        ("email_bot", MENTION, ("email_bot",)),
    ]


def test_repeated_targets_and_mentions_give_one_copy_each() -> None:
    recipients = decide_recipients(
        targets=["alice", "alice"], mentioned=["ci_bot", "ci_bot"]
    )

    assert [r.user_id for r in recipients] == ["alice", "ci_bot"]


def test_a_sender_is_never_routed_its_own_message_by_mention() -> None:
    recipients = decide_recipients(
        targets=["alice"], mentioned=["ci_bot", "email_bot"], sender="ci_bot"
    )

    assert routes(recipients) == [
        ("alice", DIRECT, ()),
        ("email_bot", MENTION, ("email_bot",)),
    ]


def test_a_sender_that_targets_itself_is_honoured() -> None:
    recipients = decide_recipients(
        targets=["ci_bot"], mentioned=["ci_bot"], sender="ci_bot"
    )

    assert routes(recipients) == [("ci_bot", DIRECT, ())]


def test_nobody_to_route_to_is_an_empty_list() -> None:
    assert decide_recipients(targets=[], mentioned=[]) == []
    assert decide_recipients(targets=[], mentioned=["ci_bot"], sender="ci_bot") == []


# --- client_message_recipients: a `message` frame (SPEC §2) ---------------------------


def client_message(
    *,
    sender: str = "alice",
    sender_is_public: bool = False,
    to: str | None = None,
    to_public_handle: str | None = None,
    mentioned: list[str] | None = None,
) -> list[Recipient]:
    return client_message_recipients(
        sender=sender,
        sender_is_public=sender_is_public,
        to=to,
        to_public_handle=to_public_handle,
        mentioned=mentioned or [],
    )


def refusal(**kwargs) -> str:
    with pytest.raises(RoutingRefused) as refused:
        client_message(**kwargs)
    assert refused.value.message
    return refused.value.code


def test_a_user_message_goes_to_the_mentioned_accounts() -> None:
    recipients = client_message(mentioned=["ci_bot", "email_bot"])

    assert routes(recipients) == [
        ("ci_bot", MENTION, ("ci_bot",)),
        ("email_bot", MENTION, ("email_bot",)),
    ]


def test_a_user_may_address_a_public_account_with_to() -> None:
    recipients = client_message(to="CI_Bot", to_public_handle="ci_bot")

    assert routes(recipients) == [("ci_bot", DIRECT, ())]


def test_to_an_account_that_is_also_mentioned_gives_one_direct_copy() -> None:
    recipients = client_message(
        to="ci_bot", to_public_handle="ci_bot", mentioned=["ci_bot", "email_bot"]
    )

    assert routes(recipients) == [
        ("ci_bot", DIRECT, ()),
        ("email_bot", MENTION, ("email_bot",)),
    ]


def test_an_ordinary_user_may_not_address_an_ordinary_user() -> None:
    assert refusal(to="bob") == "forbidden"


def test_forbidden_even_when_the_message_also_mentions_an_account() -> None:
    assert refusal(to="bob", mentioned=["ci_bot"]) == "forbidden"


def test_a_public_account_may_address_anyone() -> None:
    recipients = client_message(
        sender="ci_bot", sender_is_public=True, to="alice", mentioned=["email_bot"]
    )

    assert routes(recipients) == [
        ("alice", DIRECT, ()),
        ("email_bot", MENTION, ("email_bot",)),
    ]


def test_a_public_account_may_address_another_public_account() -> None:
    recipients = client_message(
        sender="ci_bot",
        sender_is_public=True,
        to="email_bot",
        to_public_handle="email_bot",
    )

    assert routes(recipients) == [("email_bot", DIRECT, ())]


def test_an_account_mentioning_itself_is_not_sent_its_own_message() -> None:
    recipients = client_message(
        sender="ci_bot", sender_is_public=True, to="alice", mentioned=["ci_bot"]
    )

    assert routes(recipients) == [("alice", DIRECT, ())]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="no-mention-no-to"),
        pytest.param({"to": "alice"}, id="to-self"),
        pytest.param(
            {"sender": "ci_bot", "sender_is_public": True, "mentioned": ["ci_bot"]},
            id="account-mentions-only-itself",
        ),
        pytest.param(
            {
                "sender": "ci_bot",
                "sender_is_public": True,
                "to": "ci_bot",
                "to_public_handle": "ci_bot",
            },
            id="account-to-itself",
        ),
    ],
)
def test_no_recipient_when_nobody_qualifies(kwargs: dict) -> None:
    assert refusal(**kwargs) == "no_recipient"
