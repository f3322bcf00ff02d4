"""Writes to public accounts."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import DatabaseError
from django.db.models import QuerySet
from django.db.models.functions import Lower

from accounts import key_changes, selectors
from accounts.models import PublicAccount

logger = logging.getLogger(__name__)


def public_accounts_ensure(*, handles: Iterable[str]) -> list[str]:
    """Create the accounts that do not exist yet (PUBLIC_ACCOUNTS at start-up).

    Idempotent: never deletes, renames or reactivates an account. Returns the
    handles it created.
    """
    wanted = list(dict.fromkeys(handles))
    existing = set(
        PublicAccount.objects.annotate(lowered=Lower("handle"))
        .filter(lowered__in=[h.lower() for h in wanted])
        .values_list("lowered", flat=True)
    )
    created = []
    for handle in wanted:
        if handle.lower() not in existing:
            PublicAccount.objects.get_or_create(handle=handle)
            existing.add(handle.lower())
            created.append(handle)
    if created:
        selectors.invalidate_cache()
        logger.info(
            "created public accounts from PUBLIC_ACCOUNTS: %s", ", ".join(created)
        )
    return created


def public_accounts_ensure_at_startup(*, handles: Iterable[str]) -> None:
    """As public_accounts_ensure, but a database that is not migrated yet only warns."""
    handles = list(handles)
    if not handles:
        return
    try:
        public_accounts_ensure(handles=handles)
    except DatabaseError as exc:
        logger.warning("PUBLIC_ACCOUNTS not applied (%s); run migrate", exc)


def public_accounts_set_active(
    *, accounts: QuerySet[PublicAccount], active: bool
) -> int:
    # A queryset update sends no post_save: clear the caches here. Deactivating
    # an account disables its API keys, in every process (accounts/key_changes.py).
    changed = accounts.update(is_active=active)
    selectors.invalidate_cache()
    key_changes.invalidate(accounts.db)
    return changed
