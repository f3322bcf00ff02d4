"""The message store: one Message per push, one InboxEntry per recipient (SPEC §5)."""

from __future__ import annotations

import uuid

from django.db import models


class Message(models.Model):
    """What was pushed, once, whatever the number of recipients."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.CharField(max_length=64)
    # NULL, not "", is the anonymous sender: the frame says `"from": null`.
    sender = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    data = models.JSONField(null=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} from {self.sender or 'anonymous'} ({self.id})"


class InboxEntry(models.Model):
    """One recipient's copy of a message, at its place (`seq`) in that user's stream."""

    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="inbox_entries"
    )
    user_id = models.CharField(max_length=64)
    seq = models.PositiveBigIntegerField()
    mentions = models.JSONField(default=list, blank=True)

    class Meta:
        # Django would say "inbox entrys".
        verbose_name_plural = "inbox entries"
        constraints = [
            # Also the index behind "messages of user X after seq N".
            models.UniqueConstraint(fields=["user_id", "seq"], name="inbox_user_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}#{self.seq}"


class UserSequence(models.Model):
    """The last seq handed out per user; its row lock orders concurrent pushes."""

    user_id = models.CharField(max_length=64, primary_key=True)
    last_seq = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}@{self.last_seq}"


class IdempotencyRecord(models.Model):
    """The reply to a push that named an idempotency_key (SPEC §5), for 24 h.

    `scope` is whoever sent it (an API key, or everyone in open mode): two
    callers may use the same key without colliding."""

    scope = models.CharField(max_length=80)
    key = models.CharField(max_length=128)
    reply = models.JSONField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "key"], name="idempotency_scope_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.scope}/{self.key}"
