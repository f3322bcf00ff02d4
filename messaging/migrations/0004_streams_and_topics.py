"""Personal inboxes become streams beside topics (SPEC §8).

InboxEntry(user_id, seq) -> StreamEntry(stream, seq) and UserSequence(user_id)
-> StreamSequence(stream), with every existing row's user id prefixed `user:`
so that a database that had messages keeps them, at the same seqs."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models
from django.db.models import F, Value
from django.db.models.functions import Concat, Substr

import messaging.models

PERSONAL_PREFIX = "user:"


def personal_streams(apps, schema_editor):
    for model in ("StreamEntry", "StreamSequence"):
        apps.get_model("messaging", model).objects.update(
            stream=Concat(Value(PERSONAL_PREFIX), F("stream"))
        )


def user_ids_again(apps, schema_editor):
    for model in ("StreamEntry", "StreamSequence"):
        rows = apps.get_model("messaging", model).objects
        # Topics did not exist before this migration.
        rows.exclude(stream__startswith=PERSONAL_PREFIX).delete()
        rows.update(stream=Substr("stream", len(PERSONAL_PREFIX) + 1))


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0003_inbox_entry_plural"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="inboxentry", name="inbox_user_seq"),
        migrations.RenameModel("InboxEntry", "StreamEntry"),
        migrations.RenameField("streamentry", "user_id", "stream"),
        migrations.AlterField(
            model_name="streamentry",
            name="stream",
            field=models.CharField(max_length=161),
        ),
        migrations.AlterField(
            model_name="streamentry",
            name="message",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="stream_entries",
                to="messaging.message",
            ),
        ),
        migrations.AlterModelOptions(
            name="streamentry",
            options={"verbose_name_plural": "stream entries"},
        ),
        migrations.RenameModel("UserSequence", "StreamSequence"),
        migrations.RenameField("streamsequence", "user_id", "stream"),
        migrations.AlterField(
            model_name="streamsequence",
            name="stream",
            field=models.CharField(max_length=161, primary_key=True, serialize=False),
        ),
        migrations.RunPython(personal_streams, user_ids_again),
        migrations.AddConstraint(
            model_name="streamentry",
            constraint=models.UniqueConstraint(
                fields=("stream", "seq"), name="stream_seq"
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="topic",
            field=models.CharField(blank=True, max_length=161, null=True),
        ),
        migrations.CreateModel(
            name="TopicNamespace",
            fields=[
                (
                    "name",
                    models.CharField(
                        max_length=32,
                        primary_key=True,
                        serialize=False,
                        validators=[messaging.models.validate_namespace_name],
                    ),
                ),
                (
                    "subscribe",
                    models.CharField(
                        choices=[
                            ("public", "any authenticated connection"),
                            ("members", "members of the topic"),
                            ("token", "connections whose token grants the topic"),
                        ],
                        default="members",
                        max_length=16,
                    ),
                ),
                (
                    "client_publish",
                    models.CharField(
                        choices=[
                            ("none", "nobody (HTTP pushes only)"),
                            ("members", "members of the topic"),
                            ("subscribers", "connections subscribed to the topic"),
                        ],
                        default="none",
                        max_length=16,
                    ),
                ),
                (
                    "history_size",
                    models.PositiveIntegerField(
                        default=1000,
                        help_text="Messages kept per topic; 0 makes topics live-only.",
                    ),
                ),
                (
                    "history_ttl",
                    models.PositiveIntegerField(
                        default=604800,
                        help_text="Seconds a topic message is kept.",
                        validators=[django.core.validators.MinValueValidator(1)],
                    ),
                ),
                (
                    "presence",
                    models.BooleanField(
                        default=True,
                        help_text="Subscribers are listed by the presence API.",
                    ),
                ),
                (
                    "join_leave",
                    models.BooleanField(
                        default=False,
                        help_text="Subscribers receive join and leave frames.",
                    ),
                ),
                (
                    "receipts",
                    models.BooleanField(
                        default=False,
                        help_text="Subscribers receive receipts when members read.",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.CreateModel(
            name="TopicMember",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                (
                    "topic",
                    models.CharField(
                        max_length=161,
                        validators=[messaging.models.validate_topic_name],
                    ),
                ),
                (
                    "user_id",
                    models.CharField(
                        max_length=64, validators=[messaging.models.validate_user_id]
                    ),
                ),
                ("added_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("topic", "user_id"), name="topic_member"
                    )
                ],
                "indexes": [
                    models.Index(fields=["user_id", "topic"], name="member_topics")
                ],
            },
        ),
    ]
