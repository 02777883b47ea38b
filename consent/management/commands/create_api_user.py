"""Create or update an API user with one role and print its token alone on the last line."""

import getpass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from consent.audit.actions import Via, action_record
from consent.models import ApiRole
from consent.roles import ensure_role_groups


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
        before = None if created else {"roles": sorted(user.groups.filter(name__in=ApiRole.values)
                                                      .values_list("name", flat=True)),
                                       "is_superuser": user.is_superuser, "is_staff": user.is_staff}
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
        action_record(actor=f"os:{_os_user()}", via=Via.COMMAND, action="user.create" if created else "user.update",
                      object_type="user", object_id=user.pk, object_repr=name, before=before,
                      after={"roles": [role], "is_superuser": user.is_superuser, "is_staff": user.is_staff,
                             "token_rotated": bool(rotate)})
        self.stderr.write(f"{'Created' if created else 'Updated'} API user {name!r} with role {role}.")
        self.stdout.write(token.key)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (some containers)
        return "unknown"
