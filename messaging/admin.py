"""The message store in the admin: read-only, newest first."""

from django.contrib import admin
from django.http import HttpRequest

from messaging.models import InboxEntry, Message


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "sender", "created_at")
    list_filter = ("event",)
    search_fields = ("=id", "sender")
    date_hierarchy = "created_at"


@admin.register(InboxEntry)
class InboxEntryAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "seq", "event", "sender", "created_at")
    search_fields = ("user_id",)
    list_select_related = ("message",)
    ordering = ("-message__created_at", "-seq")

    @admin.display(ordering="message__event")
    def event(self, entry: InboxEntry) -> str:
        return entry.message.event

    @admin.display(ordering="message__sender")
    def sender(self, entry: InboxEntry) -> str | None:
        return entry.message.sender

    @admin.display(ordering="message__created_at")
    def created_at(self, entry: InboxEntry):
        return entry.message.created_at
