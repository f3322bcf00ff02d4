from django.core.management.base import BaseCommand, CommandError

from accounts.keys import api_key_create
from accounts.models import ApiKey, PublicAccount


class Command(BaseCommand):
    help = (
        "Create an API key for a public account (--owner) or an upstream service "
        "(--service). The key is printed once, alone on the last line."
    )

    def add_arguments(self, parser) -> None:
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--owner", help="handle of the public account")
        owner.add_argument("--service", help="name of the upstream service")
        parser.add_argument(
            "--perm",
            action="append",
            choices=ApiKey.PERMISSIONS,
            help="a permission; repeat for several (default: push)",
        )
        parser.add_argument("--name", help="what the key is for")

    def handle(self, *args, owner, service, perm, name, **options) -> None:
        account = None
        if owner:
            account = PublicAccount.objects.filter(handle__iexact=owner).first()
            if account is None:
                raise CommandError(f"no public account {owner!r}")
        permissions = set(perm or ["push"])
        created = api_key_create(
            name=name or f"{owner or service} key",
            account=account,
            service=service or "",
            permissions=permissions,
        )
        self.stdout.write(
            f"Created API key {created.key.prefix} for {created.key.owner} "
            f"with {', '.join(sorted(permissions))}. It is shown only now:"
        )
        self.stdout.write(created.raw)
