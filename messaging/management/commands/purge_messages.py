from django.conf import settings
from django.core.management.base import BaseCommand

from messaging.streams.retention import purge


class Command(BaseCommand):
    help = (
        "Delete stored messages older than BRIDGE_HISTORY_TTL and beyond "
        "BRIDGE_HISTORY_MAX_PER_USER per user, and topic messages past their "
        "namespace's history_ttl and history_size. Safe to run while serving, "
        "and from cron."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--ttl", type=int, default=settings.BRIDGE_HISTORY_TTL)
        parser.add_argument(
            "--max-per-user", type=int, default=settings.BRIDGE_HISTORY_MAX_PER_USER
        )

    def handle(self, *args, ttl: int, max_per_user: int, **options) -> None:
        result = purge(ttl_seconds=ttl, max_per_user=max_per_user)
        self.stdout.write(
            f"expired messages: {result.expired_messages}\n"
            f"personal stream entries over {max_per_user} per user: "
            f"{result.entries_over_limit}\n"
            f"messages left in no stream: {result.orphaned_messages}\n"
            f"idempotency records past 24 h: {result.idempotency_records}\n"
            f"topic entries expired: {result.topic_entries_expired}\n"
            f"topic entries over their namespace's history_size: "
            f"{result.topic_entries_over_limit}"
        )
