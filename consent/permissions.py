"""API roles: admin (everything), marketer (topics, contacts, opt-ins, broadcasts), auditor (read-only)."""

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


def _has(request, *roles) -> bool:
    return bool(user_roles(request.user) & set(roles))


class IsAdminRole(BasePermission):
    """Admins only (the default for any endpoint that names nothing else)."""

    def has_permission(self, request, view):
        return _has(request, ApiRole.ADMIN)


class IsMarketerOrAdmin(BasePermission):
    """Marketers and admins."""

    def has_permission(self, request, view):
        return _has(request, ApiRole.ADMIN, ApiRole.MARKETER)


class IsAuditorOrAdmin(BasePermission):
    """Auditors and admins."""

    def has_permission(self, request, view):
        return _has(request, ApiRole.ADMIN, ApiRole.AUDITOR)


class ReadAnyRoleWriteMarketer(BasePermission):
    """Every role reads; marketers and admins write."""

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return _has(request, ApiRole.ADMIN, ApiRole.MARKETER, ApiRole.AUDITOR)
        return _has(request, ApiRole.ADMIN, ApiRole.MARKETER)
