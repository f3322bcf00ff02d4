"""The message store in the admin (read-only), topic namespaces and members,
and live presence for bots."""

import threading

from asgiref.sync import async_to_sync
from django.contrib import admin
from django.http import HttpRequest

from accounts.admin import PublicAccountAdmin
from accounts.models import PublicAccount
from messaging import presence
from messaging.api import operations
from messaging.models import Message, StreamEntry, TopicMember, TopicNamespace
from messaging.streams import publish, topics
from messaging.streams.namespaces import forget_cached_rules


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "sender", "stream_id", "incomplete", "created_at")
    list_filter = ("event", "incomplete")
    search_fields = ("=id", "sender", "=stream_id")
    date_hierarchy = "created_at"


@admin.register(StreamEntry)
class StreamEntryAdmin(ReadOnlyAdmin):
    list_display = ("stream", "seq", "event", "sender", "created_at")
    search_fields = ("=stream",)
    list_select_related = ("message",)
    ordering = ("-message__created_at", "-seq")

    @admin.display(ordering="message__event")
    def event(self, entry: StreamEntry) -> str:
        return entry.message.event

    @admin.display(ordering="message__sender")
    def sender(self, entry: StreamEntry) -> str | None:
        return entry.message.sender

    @admin.display(ordering="message__created_at")
    def created_at(self, entry: StreamEntry):
        return entry.message.created_at


@admin.register(TopicNamespace)
class TopicNamespaceAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "subscribe",
        "client_publish",
        "history_size",
        "history_ttl",
        "presence",
        "join_leave",
        "receipts",
    )
    readonly_fields = ("created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        # The name is the primary key: renaming would orphan its topics.
        return (*self.readonly_fields, "name") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        forget_cached_rules()  # this process at once; others within seconds


@admin.register(TopicMember)
class TopicMemberAdmin(admin.ModelAdmin):
    list_display = ("topic", "user_id", "added_at")
    search_fields = ("=topic", "=user_id")
    ordering = ("topic", "user_id")

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        # Moving a membership would be a removal nobody is told about.
        return ("topic", "user_id") if obj else ()

    def delete_model(self, request: HttpRequest, obj: TopicMember) -> None:
        # As the API does: the user's live subscriptions are checked again.
        topics.member_remove(topic=obj.topic, user_id=obj.user_id)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for member in queryset:
            topics.member_remove(topic=member.topic, user_id=member.user_id)


# accounts never imports messaging, so the bot list gets its live column here.
admin.site.unregister(PublicAccount)


@admin.register(PublicAccount)
class PublicAccountWithPresenceAdmin(PublicAccountAdmin):
    list_display = (
        "handle",
        "display_name",
        "is_active",
        "live_connections",
        "created_at",
    )
    _counts = threading.local()

    def changelist_view(self, request: HttpRequest, extra_context=None):
        # One Redis round trip for the whole page, not one per row.
        handles = list(PublicAccount.objects.values_list("handle", flat=True))
        try:
            self._counts.value = async_to_sync(operations.with_deadline)(
                presence.connection_counts, handles
            )
        except publish.LayerUnavailable:
            self._counts.value = None
        return super().changelist_view(request, extra_context)

    @admin.display(description="Online now")
    def live_connections(self, account: PublicAccount) -> str:
        counts = getattr(self._counts, "value", None)
        if counts is None:
            return "?"
        return str(counts.get(account.handle, 0))
