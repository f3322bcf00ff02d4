"""Models and migrations agree, and the admin names models in good English."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

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
