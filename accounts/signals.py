"""Changes to public accounts and API keys clear this process's caches of them
(and, for API keys, every process's: accounts/key_changes.py)."""

from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import key_cache, key_changes, selectors
from accounts.models import ApiKey, PublicAccount


@receiver([post_save, post_delete], sender=PublicAccount)
def clear_handle_cache(**kwargs) -> None:
    selectors.invalidate_cache()


@receiver([post_save, post_delete], sender=PublicAccount)
@receiver([post_save, post_delete], sender=ApiKey)
def clear_api_key_cache(using: str, **kwargs) -> None:
    # A deactivated account disables its keys; a revoked or edited key changes
    # what the cache would answer.
    key_changes.invalidate(using)


# What a key verifies to, and for how long, depends on these (tests override them).
_KEY_SETTINGS = ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "BRIDGE_API_KEY_CACHE_SECONDS")


@receiver(setting_changed)
def clear_api_key_cache_on_setting_change(setting: str, **kwargs) -> None:
    if setting in _KEY_SETTINGS:
        key_cache.clear()
