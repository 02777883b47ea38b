"""API roles are Django groups: each group's Django-admin permissions, and how a change of a user's roles
is recorded (rule 16)."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from .audit.actions import Staff, changed
from .models import ApiRole, StaffAction

# Marketers manage topics, contacts and broadcasts; everybody reads; nobody edits the ledger.
MARKETER_PERMISSIONS = Q(content_type__app_label="consent", codename__startswith="view_") | Q(
    content_type__app_label="consent", codename__in=["add_topic", "change_topic", "add_contact", "change_contact",
                                           "change_revocationreview"]
) | Q(content_type__app_label="broadcasts")
AUDITOR_PERMISSIONS = Q(content_type__app_label__in=["consent", "broadcasts"], codename__startswith="view_")
# Agents see conversations in the admin (the inbox page is theirs); nothing of broadcasts, topics or the ledger.
AGENT_PERMISSIONS = Q(content_type__app_label="consent", codename__in=["view_conversation", "view_conversationreply"])


def ensure_role_groups() -> dict[str, Group]:
    groups = {role: Group.objects.get_or_create(name=role)[0] for role in ApiRole.values}
    groups[ApiRole.MARKETER].permissions.set(Permission.objects.filter(MARKETER_PERMISSIONS))
    groups[ApiRole.AUDITOR].permissions.set(Permission.objects.filter(AUDITOR_PERMISSIONS))
    groups[ApiRole.AGENT].permissions.set(Permission.objects.filter(AGENT_PERMISSIONS))
    return groups


# --- users and roles in the staff action log (rule 16) -------------------------------------------


def user_snapshot_of(*, username: str, groups, permissions=(), is_superuser: bool, is_staff: bool,
                     is_active: bool) -> dict:
    """A user as a staff action records it: API roles, other groups, own permissions and flags; never a secret."""
    names = sorted(groups)
    return {"username": username, "roles": [g for g in names if g in ApiRole.values],
            "groups": [g for g in names if g not in ApiRole.values], "permissions": sorted(permissions),
            "is_superuser": is_superuser, "is_staff": is_staff, "is_active": is_active}


def _permission_names(permissions) -> list[str]:
    return [f"{p.content_type.app_label}.{p.codename}" for p in permissions]


def user_snapshot(user) -> dict:
    """`user_snapshot_of` a saved user, as the database has it now."""
    return user_snapshot_of(username=user.get_username(), groups=user.groups.values_list("name", flat=True),
                            permissions=_permission_names(user.user_permissions.select_related("content_type")),
                            is_superuser=user.is_superuser, is_staff=user.is_staff, is_active=user.is_active)


def user_form_snapshot(initial: dict) -> dict:
    """`user_snapshot_of` the user a Django admin change form was opened on (its `initial`: the stored values)."""
    return user_snapshot_of(username=initial.get("username", ""), groups=[g.name for g in initial.get("groups", [])],
                            permissions=_permission_names(initial.get("user_permissions", [])),
                            is_superuser=bool(initial.get("is_superuser")), is_staff=bool(initial.get("is_staff")),
                            is_active=bool(initial.get("is_active")))


def user_change_record(*, user, before: dict | None, by: Staff, extra: dict | None = None) -> StaffAction | None:
    """Record a user created (`before` None) or changed, in the caller's transaction: only what changed,
    plus `extra` (e.g. a token rotated); nothing changed and no `extra`, nothing recorded."""
    after = user_snapshot(user)
    object_fields = {"object_type": "user", "object_id": user.pk, "object_repr": user.get_username()}
    if before is None:
        return by.record(action="user.create", **object_fields, before=None, after={**after, **(extra or {})})
    was, now = changed(before, after)
    if not now and not extra:
        return None
    return by.record(action="user.update", **object_fields, before=was, after={**now, **(extra or {})})


def user_delete_record(*, user, by: Staff) -> StaffAction:
    """Record a user about to be deleted, in the deletion's transaction."""
    return by.record(action="user.delete", object_type="user", object_id=user.pk, object_repr=user.get_username(),
                     before=user_snapshot(user), after=None)
