"""Public accounts (SPEC §1): defaults, unique handles, PUBLIC_ACCOUNTS, the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts import selectors, services
from accounts.models import PublicAccount
from messaging.streams import delivery
from messaging.streams.delivery import PushRequest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_HANDLES = {"ci_bot", "email_bot", "notification_bot", "system_bot"}
ACCOUNTS_TABLE = PublicAccount._meta.db_table
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def handles() -> set[str]:
    return set(PublicAccount.objects.values_list("handle", flat=True))


# --- the defaults ---------------------------------------------------------------------


@pytest.mark.django_db
def test_migration_creates_the_default_accounts_active_and_described() -> None:
    accounts = {account.handle: account for account in PublicAccount.objects.all()}

    assert set(accounts) == DEFAULT_HANDLES
    for account in accounts.values():
        assert account.is_active, account
        assert account.display_name, account
        assert account.description, account
    assert selectors.resolve_mentions(sorted(DEFAULT_HANDLES)) == sorted(
        DEFAULT_HANDLES
    )


# --- handles are unique whatever their case -------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("handle", ["CI_BOT", "Ci_Bot", "ci_bot"])
def test_a_handle_differing_only_in_case_cannot_be_created(handle: str) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        PublicAccount.objects.create(handle=handle)

    assert PublicAccount.objects.filter(handle__iexact="ci_bot").count() == 1


# --- services.public_accounts_ensure (PUBLIC_ACCOUNTS at start-up) --------------------


@pytest.mark.django_db
def test_ensure_creates_missing_accounts_once() -> None:
    first = services.public_accounts_ensure(handles=["deploy_bot", "ci_bot"])
    second = services.public_accounts_ensure(handles=["deploy_bot", "ci_bot"])

    assert first == ["deploy_bot"]
    assert second == []
    assert handles() == DEFAULT_HANDLES | {"deploy_bot"}
    assert PublicAccount.objects.get(handle="deploy_bot").is_active
    # Created accounts are mentionable at once in this process.
    assert selectors.resolve_mentions(["DEPLOY_BOT"]) == ["deploy_bot"]


@pytest.mark.django_db
def test_ensure_compares_handles_case_insensitively() -> None:
    created = services.public_accounts_ensure(handles=["CI_BOT", "a_bot", "A_BOT"])

    assert created == ["a_bot"]
    assert handles() == DEFAULT_HANDLES | {"a_bot"}


@pytest.mark.django_db
def test_ensure_keeps_the_configured_spelling_as_the_canonical_handle() -> None:
    assert services.public_accounts_ensure(handles=["Deploy.Bot"]) == ["Deploy.Bot"]

    assert PublicAccount.objects.filter(handle="Deploy.Bot").exists()
    assert selectors.resolve_mentions(["deploy.bot"]) == ["Deploy.Bot"]


@pytest.mark.django_db
def test_ensure_never_reactivates_a_deactivated_account() -> None:
    services.public_accounts_set_active(
        accounts=PublicAccount.objects.filter(handle="email_bot"), active=False
    )

    assert services.public_accounts_ensure(handles=["email_bot"]) == []

    assert PublicAccount.objects.get(handle="email_bot").is_active is False
    assert selectors.resolve_mentions(["email_bot"]) == []


@pytest.mark.django_db
def test_ensure_never_deletes_accounts_it_was_not_given() -> None:
    services.public_accounts_ensure(handles=["deploy_bot"])
    services.public_accounts_ensure(handles=[])

    assert handles() == DEFAULT_HANDLES | {"deploy_bot"}


def _django_setup(public_accounts: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BRIDGE_", "DJANGO_")) and key != "DATABASE_URL"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="bridge_project.settings",
        DEBUG="1",
        PUBLIC_ACCOUNTS=public_accounts,
    )
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invalid_public_accounts_stop_start_up_naming_the_variable() -> None:
    result = _django_setup("ok_bot,bad handle")

    assert result.returncode != 0
    assert "PUBLIC_ACCOUNTS" in result.stderr
    assert "bad handle" in result.stderr


def test_valid_public_accounts_let_django_start() -> None:
    # The control for the test above: the same command starts with good handles.
    result = _django_setup("ok_bot, deploy.bot ,Other-Bot")

    assert result.returncode == 0, result.stderr


# --- the selector cache ---------------------------------------------------------------


@pytest.mark.django_db
def test_deactivating_through_the_service_takes_effect_at_once() -> None:
    assert selectors.resolve_mentions(["ci_bot"]) == ["ci_bot"]  # cache now warm

    services.public_accounts_set_active(
        accounts=PublicAccount.objects.filter(handle="ci_bot"), active=False
    )
    assert selectors.resolve_mentions(["ci_bot"]) == []
    assert selectors.canonical_handle("ci_bot") is None

    services.public_accounts_set_active(
        accounts=PublicAccount.objects.filter(handle="ci_bot"), active=True
    )
    assert selectors.resolve_mentions(["ci_bot"]) == ["ci_bot"]


@pytest.mark.django_db
def test_saving_or_deleting_an_account_takes_effect_at_once() -> None:
    assert selectors.resolve_mentions(["ci_bot", "new_bot"]) == ["ci_bot"]

    account = PublicAccount.objects.create(handle="new_bot")
    assert selectors.resolve_mentions(["ci_bot", "new_bot"]) == ["ci_bot", "new_bot"]

    account.is_active = False
    account.save()
    assert selectors.resolve_mentions(["new_bot"]) == []

    PublicAccount.objects.get(handle="ci_bot").delete()
    assert selectors.resolve_mentions(["ci_bot"]) == []


@pytest.mark.django_db
def test_a_warm_cache_answers_without_a_query(django_assert_num_queries) -> None:
    selectors.resolve_mentions(["ci_bot"])

    with django_assert_num_queries(0):
        assert selectors.resolve_mentions(["CI_BOT", "email_bot"]) == [
            "ci_bot",
            "email_bot",
        ]
        assert selectors.canonical_handle("Notification_Bot") == "notification_bot"


# --- queries per push -----------------------------------------------------------------
#
# push_batch sends through the channel layer with async_to_sync, and only after
# the transaction commits: these tests need real transactions. The
# default_public_accounts fixture restores what an earlier transactional test
# flushed.


def _push_request(user_id: str) -> PushRequest:
    return PushRequest(
        targets=(user_id,),
        event="message",
        data={"text": "hi @ci_bot"},
        sender=None,
        text="hi @ci_bot",
    )


def _account_selects(context: CaptureQueriesContext) -> list[str]:
    return [
        query["sql"]
        for query in context.captured_queries
        if query["sql"].lstrip().upper().startswith("SELECT")
        and ACCOUNTS_TABLE in query["sql"]
    ]


def _data_statements(context: CaptureQueriesContext) -> list[str]:
    """Statements other than transaction control (which differs per backend)."""
    return [
        query["sql"]
        for query in context.captured_queries
        if not query["sql"].lstrip().upper().startswith(TRANSACTION_CONTROL)
    ]


def _report(label: str, context: CaptureQueriesContext) -> None:
    print(
        f"\n[queries] {label}: total={len(context)} "
        f"data={len(_data_statements(context))} "
        f"public-account selects={len(_account_selects(context))}"
    )
    for query in context.captured_queries:
        print("   ", query["sql"][:160])


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_public_accounts")
def test_push_with_a_mention_on_a_warm_cache_reads_no_account() -> None:
    delivery.push(_push_request("alice"))  # warms the cache

    with CaptureQueriesContext(connection) as context:
        receipt = delivery.push(_push_request("alice"))
    _report("single push, warm cache", context)

    assert [(r.user_id, r.via) for r in receipt.recipients] == [
        ("alice", "direct"),
        ("ci_bot", "mention"),
    ]
    assert [(r.user_id, r.seq) for r in receipt.recipients] == [
        ("alice", 2),
        ("ci_bot", 2),
    ]
    assert _account_selects(context) == []
    # Reserve seqs (one upsert), then the message and its inbox entries: one
    # statement each, however many recipients.
    assert len(_data_statements(context)) == 3
    if connection.vendor == "sqlite":
        assert len(context) == 5  # plus BEGIN IMMEDIATE and COMMIT


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_public_accounts")
def test_push_with_a_mention_on_a_cold_cache_reads_accounts_once() -> None:
    selectors.invalidate_cache()

    with CaptureQueriesContext(connection) as context:
        receipt = delivery.push(_push_request("alice"))
    _report("single push, cold cache", context)

    assert [r.user_id for r in receipt.recipients] == ["alice", "ci_bot"]
    assert len(_account_selects(context)) == 1
    assert len(_data_statements(context)) == 4
    if connection.vendor == "sqlite":
        assert len(context) == 6


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_public_accounts")
def test_batch_of_100_mentions_reads_accounts_as_often_as_one_push() -> None:
    selectors.invalidate_cache()
    with CaptureQueriesContext(connection) as single:
        delivery.push(_push_request("alice"))
    selectors.invalidate_cache()

    with CaptureQueriesContext(connection) as batch:
        receipts = delivery.push_batch([_push_request(f"user{i}") for i in range(100)])
    _report("100-item batch, cold cache", batch)

    assert len(receipts) == 100
    assert all(
        [(r.user_id, r.via) for r in receipt.recipients]
        == [(f"user{i}", "direct"), ("ci_bot", "mention")]
        for i, receipt in enumerate(receipts)
    )
    # ci_bot got seq 1 from the single push, then 2..101 in request order.
    assert [receipt.recipients[1].seq for receipt in receipts] == list(range(2, 102))
    assert len(_account_selects(batch)) == len(_account_selects(single)) == 1
    # The whole batch is stored with as many statements as one push.
    assert len(_data_statements(batch)) == len(_data_statements(single))
