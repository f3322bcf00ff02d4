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


class ApiKey(models.Model):
    """A secret that lets a public account or an upstream service use the HTTP API.

    Only a keyed hash of the key is stored; the key itself is shown once.
    """

    PERMISSIONS = ("push", "broadcast", "sender", "ops", "issue_tokens", "topics")

    name = models.CharField(max_length=100, help_text="What the key is for.")
    account = models.ForeignKey(
        PublicAccount,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="The public account pushes are sent from (from = its handle).",
    )
    service = models.CharField(
        max_length=64,
        blank=True,
        help_text="Or: the upstream service that owns the key (pushes are anonymous).",
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    can_push = models.BooleanField("push", default=True)
    can_broadcast = models.BooleanField("broadcast", default=False)
    can_send_as = models.BooleanField(
        "sender", default=False, help_text="May name any `sender` in a push."
    )
    can_ops = models.BooleanField("ops", default=False)
    can_issue_tokens = models.BooleanField("issue_tokens", default=False)
    can_manage_topics = models.BooleanField(
        "topics",
        default=False,
        help_text="May manage topic membership (SPEC §8); `ops` may too.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(account__isnull=False, service="")
                    | models.Q(account__isnull=True) & ~models.Q(service="")
                ),
                name="apikey_one_owner",
                violation_error_message="A key belongs to an account or a service.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def owner(self) -> str:
        return self.account.handle if self.account_id else self.service

    @property
    def permissions(self) -> frozenset[str]:
        flags = {
            "push": self.can_push,
            "broadcast": self.can_broadcast,
            "sender": self.can_send_as,
            "ops": self.can_ops,
            "issue_tokens": self.can_issue_tokens,
            "topics": self.can_manage_topics,
        }
        return frozenset(name for name, allowed in flags.items() if allowed)
