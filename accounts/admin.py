from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from accounts import services
from accounts.models import PublicAccount


@admin.register(PublicAccount)
class PublicAccountAdmin(admin.ModelAdmin):
    list_display = ("handle", "display_name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("handle", "display_name")
    readonly_fields = ("created_at", "updated_at", "recent_messages")
    fields = (
        "handle",
        "display_name",
        "description",
        "avatar_url",
        "is_active",
        "recent_messages",
        "created_at",
        "updated_at",
    )
    actions = ("activate", "deactivate")

    @admin.display(description="Recent messages")
    def recent_messages(self, account: PublicAccount) -> str:
        if account.pk is None:
            return "-"
        # Links into the read-only message store, so that accounts needs no
        # import of messaging (dependencies point one way).
        received = reverse("admin:messaging_inboxentry_changelist")
        sent = reverse("admin:messaging_message_changelist")
        return format_html(
            '<a href="{}?user_id={}">received</a> · <a href="{}?sender={}">sent</a>',
            received,
            account.handle,
            sent,
            account.handle,
        )

    @admin.action(description="Activate selected accounts")
    def activate(self, request: HttpRequest, queryset: QuerySet[PublicAccount]) -> None:
        changed = services.public_accounts_set_active(accounts=queryset, active=True)
        self.message_user(request, f"{changed} account(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate selected accounts")
    def deactivate(
        self, request: HttpRequest, queryset: QuerySet[PublicAccount]
    ) -> None:
        changed = services.public_accounts_set_active(accounts=queryset, active=False)
        self.message_user(
            request, f"{changed} account(s) deactivated.", messages.SUCCESS
        )
