"""BRIDGE_TOPIC_NAMESPACES at start-up (SPEC §8): create the namespaces that do
not exist yet; never change one that does (an operator may have edited it in
the admin since)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction

from messaging.models import TopicNamespace
from messaging.streams.namespaces import forget_cached_rules

logger = logging.getLogger(__name__)


def namespaces_ensure(*, namespaces: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Create the missing namespaces with the given settings (the rest at their
    defaults); returns the names created."""
    existing = set(
        TopicNamespace.objects.filter(name__in=list(namespaces)).values_list(
            "name", flat=True
        )
    )
    created = []
    for name, config in namespaces.items():
        if name in existing:
            continue
        try:
            with transaction.atomic():
                TopicNamespace.objects.create(name=name, **config)
        except IntegrityError:  # another process starting at the same time
            continue
        created.append(name)
    if created:
        forget_cached_rules()
        logger.info(
            "created topic namespaces from BRIDGE_TOPIC_NAMESPACES: %s",
            ", ".join(created),
        )
    return created


def namespaces_ensure_at_startup(
    *, namespaces: Mapping[str, Mapping[str, Any]]
) -> None:
    """As namespaces_ensure, but a database that is not migrated yet only warns."""
    if not namespaces:
        return
    try:
        namespaces_ensure(namespaces=namespaces)
    except DatabaseError as exc:
        logger.warning("BRIDGE_TOPIC_NAMESPACES not applied (%s); run migrate", exc)
