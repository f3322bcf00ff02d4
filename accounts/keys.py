"""API keys: minting, keyed hashing, lookup and revocation (SPEC §4).

A key looks like `brk_<prefix>_<secret>`. The prefix finds the row with one
indexed lookup; an HMAC-SHA256 of the whole key, keyed by SECRET_KEY, is
compared in constant time. Password hashers are deliberately not used: they
cost ~0.4 s per request, and a 32-byte random secret needs no stretching.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import ApiKey, PublicAccount

KEY_PREFIX = "brk_"
_PREFIX_CHARS = 8
_SALT = "bridge.api-key"
# last_used_at is informational: writing it on every request would turn every
# push into two writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    raw: str


# What api_key_mint makes: 8 hex digits, then token_urlsafe(32), 43 characters.
_WELL_FORMED = re.compile(r"brk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


def looks_like_api_key(raw: str) -> bool:
    """A token meant as an API key (it is checked as one, not as a signed token)."""
    return raw.startswith(KEY_PREFIX) and len(raw) > len(KEY_PREFIX) + _PREFIX_CHARS + 1


def is_well_formed_api_key(raw: str) -> bool:
    """Could `raw` be a key api_key_mint made? Anything else is refused before a
    query, so forged keys cost no database round trip."""
    return _WELL_FORMED.fullmatch(raw) is not None


def digest(raw: str, secret: str | None = None) -> str:
    return salted_hmac(_SALT, raw, secret=secret, algorithm="sha256").hexdigest()


def api_key_create(
    *,
    name: str,
    account: PublicAccount | None = None,
    service: str = "",
    permissions: set[str] | frozenset[str] = frozenset({"push"}),
) -> CreatedKey:
    unknown = set(permissions) - set(ApiKey.PERMISSIONS)
    if unknown:
        raise ValueError(f"unknown permissions: {', '.join(sorted(unknown))}")
    key = ApiKey(
        name=name,
        account=account,
        service=service,
        can_push="push" in permissions,
        can_broadcast="broadcast" in permissions,
        can_send_as="sender" in permissions,
        can_ops="ops" in permissions,
        can_issue_tokens="issue_tokens" in permissions,
        can_manage_topics="topics" in permissions,
    )
    key.full_clean(exclude=["prefix", "digest"])
    raw = api_key_mint(key)
    key.save()
    return CreatedKey(key, raw)


def api_key_mint(key: ApiKey) -> str:
    """Give an unsaved key its secret; returns the raw key, which is not stored."""
    key.prefix = secrets.token_hex(_PREFIX_CHARS // 2)
    raw = f"{KEY_PREFIX}{key.prefix}_{secrets.token_urlsafe(32)}"
    key.digest = digest(raw)
    return raw


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The live key `raw` names, or None (unknown, wrong secret, revoked, or its
    account deactivated)."""
    if not is_well_formed_api_key(raw):
        return None
    prefix = raw[len(KEY_PREFIX) : len(KEY_PREFIX) + _PREFIX_CHARS]
    key = (
        ApiKey.objects.select_related("account")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if key is None or not _matches(raw, key.digest):
        return None
    if key.account_id is not None and not key.account.is_active:
        return None
    _touch(key)
    return key


def api_key_revoke(*, key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])


def _matches(raw: str, stored: str) -> bool:
    secrets_to_try = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return any(hmac.compare_digest(digest(raw, s), stored) for s in secrets_to_try)


def _touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
