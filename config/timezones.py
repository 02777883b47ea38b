"""The marketers' time zone: the admin and the workspace pages show times in it, labelled.

`WORKSPACE_TIME_ZONE` (default TIME_ZONE) is activated for requests under /admin/ and /workspace/ only:
the API, the webhooks and the public pages keep UTC.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)

STAFF_PREFIXES = ("/admin/", "/workspace/")


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("WORKSPACE_TIME_ZONE %r is not an IANA time zone; showing UTC", name)
        return ZoneInfo("UTC")


def workspace_zone() -> ZoneInfo:
    return _zone(getattr(settings, "WORKSPACE_TIME_ZONE", settings.TIME_ZONE) or "UTC")


class WorkspaceTimeZoneMiddleware:
    """Activate the marketers' time zone for the staff pages."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(STAFF_PREFIXES):
            with timezone.override(workspace_zone()):
                return self.get_response(request)
        return self.get_response(request)


def workspace_context(request) -> dict:
    """Template context: the zone's name for the label beside every time."""
    return {"workspace_time_zone": workspace_zone().key}
