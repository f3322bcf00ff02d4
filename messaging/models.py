"""The stream store (SPEC §5, §8).

Every message goes to named streams: a user's personal stream `user:<id>` or
a topic `<namespace>:<name>`. A Message is stored once, whatever the number of
streams or subscribers; each stream it is in has one StreamEntry at the
message's place (`seq`) in that stream. Topic rules live in TopicNamespace,
membership in TopicMember.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from accounts.identifiers import USER_ID_RE
from messaging.streams.names import (
    NAMESPACE_RE,
    PERSONAL_NAMESPACE,
    InvalidTopic,
    parse_topic,
)

# `<namespace>:<name>`: at most 32 + 1 + 128 characters (SPEC §8), and a
# personal stream is `user:` + a user id of at most 64.
STREAM_NAME_MAX = 161


def validate_namespace_name(value: str) -> None:
    if not NAMESPACE_RE.match(value) or value == PERSONAL_NAMESPACE:
        raise ValidationError(
            "Must match ^[a-z][a-z0-9_-]{0,31}$ and not be 'user' (reserved)."
        )


def validate_topic_name(value: str) -> None:
    try:
        parse_topic(value)
    except InvalidTopic as exc:
        raise ValidationError(str(exc)) from None


validate_user_id = RegexValidator(USER_ID_RE, "Must be a user id (SPEC §1).")


class Message(models.Model):
    """What was pushed, once, whatever the number of recipients."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.CharField(max_length=64)
    # NULL, not "", is the anonymous sender: the frame says `"from": null`.
    sender = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    data = models.JSONField(null=True)
    # The topic it was published to; its mention copies in bots' personal
    # streams say where it was said (SPEC §8). NULL for a personal push.
    topic = models.CharField(  # noqa: DJ001
        max_length=STREAM_NAME_MAX, null=True, blank=True
    )
    created_at = models.DateTimeField(db_index=True)
    # The API key (accounts.ApiKey pk) whose push this was: it may recall it
    # (SPEC §9). NULL for client messages and open-mode pushes.
    pushed_by_key = models.PositiveBigIntegerField(null=True, blank=True)
    # Set when recalled: the message is kept as a tombstone, data NULL.
    recalled_at = models.DateTimeField(null=True, blank=True)
    # A message sent in parts (SPEC §9 streamed messages): the sender's
    # stream id, and whether the server finished it for want of a final part.
    stream_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    incomplete = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} from {self.sender or 'anonymous'} ({self.id})"


class StreamEntry(models.Model):
    """A message at its place (`seq`) in one stream."""

    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="stream_entries"
    )
    stream = models.CharField(max_length=STREAM_NAME_MAX)
    seq = models.PositiveBigIntegerField()
    # The handles whose mention routed this copy here; [] on a direct copy.
    mentions = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name_plural = "stream entries"
        constraints = [
            # Also the index behind "messages of stream X after seq N".
            models.UniqueConstraint(fields=["stream", "seq"], name="stream_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.stream}#{self.seq}"


class StreamSequence(models.Model):
    """The last seq handed out per stream; its row lock orders concurrent pushes."""

    stream = models.CharField(max_length=STREAM_NAME_MAX, primary_key=True)
    last_seq = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.stream}@{self.last_seq}"


class TopicNamespace(models.Model):
    """The rules of every topic `<name>:…` (SPEC §8)."""

    class Subscribe(models.TextChoices):
        PUBLIC = "public", "any authenticated connection"
        MEMBERS = "members", "members of the topic"
        TOKEN = "token", "connections whose token grants the topic"

    class ClientPublish(models.TextChoices):
        NONE = "none", "nobody (HTTP pushes only)"
        MEMBERS = "members", "members of the topic"
        SUBSCRIBERS = "subscribers", "connections subscribed to the topic"

    name = models.CharField(
        max_length=32, primary_key=True, validators=[validate_namespace_name]
    )
    subscribe = models.CharField(
        max_length=16, choices=Subscribe.choices, default=Subscribe.MEMBERS
    )
    client_publish = models.CharField(
        max_length=16, choices=ClientPublish.choices, default=ClientPublish.NONE
    )
    history_size = models.PositiveIntegerField(
        default=1000, help_text="Messages kept per topic; 0 makes topics live-only."
    )
    history_ttl = models.PositiveIntegerField(
        default=604_800,
        validators=[MinValueValidator(1)],
        help_text="Seconds a topic message is kept.",
    )
    presence = models.BooleanField(
        default=True, help_text="Subscribers are listed by the presence API."
    )
    join_leave = models.BooleanField(
        default=False, help_text="Subscribers receive join and leave frames."
    )
    receipts = models.BooleanField(
        default=False, help_text="Subscribers receive receipts when members read."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class TopicMember(models.Model):
    """A user who belongs to a topic (SPEC §8 "Membership")."""

    topic = models.CharField(
        max_length=STREAM_NAME_MAX, validators=[validate_topic_name]
    )
    user_id = models.CharField(max_length=64, validators=[validate_user_id])
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["topic", "user_id"], name="topic_member"),
        ]
        indexes = [models.Index(fields=["user_id", "topic"], name="member_topics")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.topic}"


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


class ReadPosition(models.Model):
    """How far a user has read one stream (SPEC §9 "Reading and receipts").

    Only moves forward (messaging/streams/reading.py); a stream the user has
    never read has no row: position 0."""

    user_id = models.CharField(max_length=64, validators=[validate_user_id])
    stream = models.CharField(max_length=STREAM_NAME_MAX)
    read_seq = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "stream"], name="read_position_user_stream"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.stream}@{self.read_seq}"
