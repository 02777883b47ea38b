"""API roles: admin (everything), marketer (topics, contacts, opt-ins, broadcasts), auditor (read-only),
agent (the customer-care inbox only)."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from .models import ApiRole


def user_roles(user) -> set[str]:
    """The API roles of a user; superusers are admins."""
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    cached = getattr(user, "_api_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ApiRole.values).values_list("name", flat=True))
        if user.is_superuser:
            cached.add(ApiRole.ADMIN)
        user._api_roles = cached
    return cached


def _has(request, role) -> bool:
    return role in user_roles(request.user)


class IsAdminRole(BasePermission):
    """Admins (the default for any endpoint that names nothing else)."""

    def has_permission(self, request, view):
        return bool(_has(request, ApiRole.ADMIN))


class IsMarketerRole(BasePermission):
    """Marketers."""

    def has_permission(self, request, view):
        return bool(_has(request, ApiRole.MARKETER))


class IsAuditorRole(BasePermission):
    """Auditors."""

    def has_permission(self, request, view):
        return bool(_has(request, ApiRole.AUDITOR))


class IsAgentRole(BasePermission):
    """Customer-care agents."""

    def has_permission(self, request, view):
        return bool(_has(request, ApiRole.AGENT))


class IsRevocationFromConversation(BasePermission):
    """A revocation recorded from a care conversation (`via: conversation`): what an agent may record."""

    def has_permission(self, request, view):
        data = request.data if request.method == "POST" else None
        return isinstance(data, dict) and data.get("via") == "conversation"


class IsReadOnly(BasePermission):
    """Safe methods only (GET, HEAD, OPTIONS)."""

    def has_permission(self, request, view):
        return bool(request.method in SAFE_METHODS)


# Every role reads; marketers and admins write.
ReadAnyRoleWriteMarketer = IsAdminRole | IsMarketerRole | (IsReadOnly & IsAuditorRole)

# The care inbox: agents and admins.
CareInbox = IsAdminRole | IsAgentRole
