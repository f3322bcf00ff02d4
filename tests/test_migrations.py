"""Models and migrations agree, and the admin names models in good English."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from messaging.models import StreamEntry


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    # Exits with status 1 (SystemExit) when a migration is missing.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_stream_entries_are_plural_in_english():
    assert StreamEntry._meta.verbose_name_plural == "stream entries"


@pytest.mark.django_db
def test_the_admin_index_lists_stream_entries(admin_client: Client):
    page = admin_client.get("/admin/").content.decode()
    assert "Stream entries" in page
    assert "Stream entrys" not in page


@pytest.mark.django_db(transaction=True)
def test_migrating_to_streams_keeps_every_users_history_at_its_seqs():
    """0004 turns inbox entries into personal streams (SPEC §8): a database
    with messages before the upgrade has them afterwards, same seqs."""
    executor = MigrationExecutor(connection)
    before = [("messaging", "0003_inbox_entry_plural")]
    after = [("messaging", "0004_streams_and_topics")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    message = old.get_model("messaging", "Message").objects.create(
        event="notification", sender="ci_bot", data={"n": 1}, created_at=timezone.now()
    )
    entries = old.get_model("messaging", "InboxEntry").objects
    entries.create(message=message, user_id="alice", seq=7, mentions=[])
    entries.create(message=message, user_id="ci_bot", seq=3, mentions=["ci_bot"])
    sequences = old.get_model("messaging", "UserSequence").objects
    sequences.create(user_id="alice", last_seq=7)
    sequences.create(user_id="ci_bot", last_seq=3)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new = executor.loader.project_state(after).apps

    stored = new.get_model("messaging", "StreamEntry").objects.order_by("stream")
    assert [(e.stream, e.seq, e.mentions, e.message_id) for e in stored] == [
        ("user:alice", 7, [], message.id),
        ("user:ci_bot", 3, ["ci_bot"], message.id),
    ]
    counters = new.get_model("messaging", "StreamSequence").objects.order_by("stream")
    assert [(c.stream, c.last_seq) for c in counters] == [
        ("user:alice", 7),
        ("user:ci_bot", 3),
    ]
    # And back: the reverse migration gives the user ids back.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    assert sorted(
        old.get_model("messaging", "InboxEntry").objects.values_list("user_id", "seq")
    ) == [("alice", 7), ("ci_bot", 3)]
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
