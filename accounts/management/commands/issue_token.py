from django.core.management.base import BaseCommand, CommandError

from accounts.identifiers import is_user_id
from accounts.tokens import token_issue


class Command(BaseCommand):
    help = "Print a signed WebSocket token for one user id (valid BRIDGE_TOKEN_TTL s)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("user_id")
        parser.add_argument("--ttl", type=int, help="lifetime in seconds")
        parser.add_argument(
            "--topic",
            action="append",
            default=[],
            dest="topics",
            help="a topic the token grants, or 'ns:*'; repeat for several",
        )

    def handle(
        self,
        *args,
        user_id: str,
        ttl: int | None,
        topics: list[str],
        **options,
    ) -> None:
        if not is_user_id(user_id):
            raise CommandError(f"not a user id: {user_id!r}")
        if ttl is not None and ttl < 1:
            raise CommandError("--ttl must be at least 1")
        try:
            issued = token_issue(user_id=user_id, ttl_seconds=ttl, topics=topics)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"expires at {issued.expires_at.isoformat()}")
        self.stdout.write(issued.token)
