"""Models and migrations agree, and the admin names models in good English."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from messaging.models import InboxEntry


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    # Exits with status 1 (SystemExit) when a migration is missing.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_inbox_entries_are_plural_in_english():
    assert InboxEntry._meta.verbose_name_plural == "inbox entries"


@pytest.mark.django_db
def test_the_admin_index_lists_inbox_entries(admin_client: Client):
    page = admin_client.get("/admin/").content.decode()
    assert "Inbox entries" in page
    assert "Inbox entrys" not in page
