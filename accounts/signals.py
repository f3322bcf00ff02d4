"""Any change to a public account clears this process's handle cache."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import selectors
from accounts.models import PublicAccount


@receiver([post_save, post_delete], sender=PublicAccount)
def clear_handle_cache(**kwargs) -> None:
    selectors.invalidate_cache()
