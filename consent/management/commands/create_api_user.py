"""Create or update an API user with one role and print its token alone on the last line."""

import getpass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from consent.audit.actions import Staff, Via
from consent.models import ApiRole
from consent.roles import ensure_role_groups, user_change_record, user_snapshot


class Command(BaseCommand):
    help = "Create or update an API user with a role (marketer, auditor, admin, agent) and print its token."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--role", required=True, choices=ApiRole.values)
        parser.add_argument("--rotate", action="store_true", help="Issue a new token, invalidating the old one.")

    @transaction.atomic
    def handle(self, *args, name, role, rotate, **options):
        if not name.strip() or len(name) > 150:
            raise CommandError("NAME must be 1 to 150 characters.")
        User = get_user_model()
        user, created = User.objects.get_or_create(username=name)
        before = None if created else user_snapshot(user)
        if created:
            user.set_unusable_password()
        # Every role may sign in to the Django admin, with its group's permissions.
        user.is_staff = True
        user.is_superuser = role == ApiRole.ADMIN
        user.save()
        groups = ensure_role_groups()
        user.groups.remove(*Group.objects.filter(name__in=ApiRole.values))
        user.groups.add(groups[role])
        if rotate:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        # Whoever ran the command, as the operating system names them (the command has no signed-in user).
        user_change_record(user=user, before=before, by=Staff(actor=f"os:{_os_user()}", via=Via.COMMAND),
                           extra={"token_rotated": True} if rotate else None)
        self.stderr.write(f"{'Created' if created else 'Updated'} API user {name!r} with role {role}.")
        self.stdout.write(token.key)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (some containers)
        return "unknown"
