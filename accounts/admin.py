from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from accounts import keys, services
from accounts.models import ApiKey, PublicAccount


@admin.register(PublicAccount)
class PublicAccountAdmin(admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
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
        received = reverse("admin:messaging_streamentry_changelist")
        sent = reverse("admin:messaging_message_changelist")
        return format_html(
            '<a href="{}?stream=user:{}">received</a> · '
            '<a href="{}?sender={}">sent</a>',
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


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "owner",
        "prefix",
        "permission_list",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("revoked_at", "can_ops", "can_broadcast", "can_manage_topics")
    search_fields = ("name", "prefix", "service", "account__handle")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    autocomplete_fields = ("account",)
    actions = ("revoke",)

    @admin.display(description="Permissions")
    def permission_list(self, key: ApiKey) -> str:
        return ", ".join(sorted(key.permissions)) or "-"

    def save_model(self, request: HttpRequest, key: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, key, form, change)
            return
        # Kept on the instance for response_add only; never saved.
        key.raw_key = keys.api_key_mint(key)
        super().save_model(request, key, form, change)

    def response_add(self, request: HttpRequest, key: ApiKey, post_url_continue=None):
        """The new key, on the page that answers the form, and nowhere else.

        Not as a message: Django's default message storage keeps messages in a
        cookie, so the key would travel back and forth in a Cookie header (and
        sit in the browser) until the next page showed it."""
        # The admin's views are never_cache: no-store covers this page too.
        return TemplateResponse(
            request,
            "admin/accounts/apikey/created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "API key created",
                "key": key,
                "raw_key": key.raw_key,
            },
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            keys.api_key_revoke(key=key)
        self.message_user(
            request, f"{queryset.count()} key(s) revoked.", messages.SUCCESS
        )
