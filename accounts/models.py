"""Public accounts: bots such as ci_bot that users talk to by @mention (SPEC §1)."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

from accounts.identifiers import USER_ID_RE

HANDLE_VALIDATOR = RegexValidator(
    USER_ID_RE,
    message=(
        "A handle is a user id: a letter or digit, then up to 63 of A-Z a-z 0-9 _ . -"
    ),
    code="invalid_handle",
)

DEFAULT_HANDLES = ("ci_bot", "email_bot", "notification_bot", "system_bot")


class PublicAccount(models.Model):
    handle = models.CharField(
        max_length=64,
        unique=True,
        validators=[HANDLE_VALIDATOR],
        help_text="The account's user id; mentions match it case-insensitively.",
    )
    display_name = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    avatar_url = models.URLField(blank=True)
    is_active = models.BooleanField(
        default=True,
        help_text=(
            "Inactive accounts receive nothing by mention; "
            "their handles are plain text."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["handle"]
        constraints = [
            models.UniqueConstraint(
                Lower("handle"),
                name="publicaccount_handle_unique_ci",
                violation_error_message="A public account with this handle exists.",
            )
        ]

    def __str__(self) -> str:
        return self.handle
