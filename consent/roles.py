"""API roles are Django groups; this gives each group its Django-admin permissions."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from .models import ApiRole

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
