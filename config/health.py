"""Liveness and readiness probes.

Apps add what an operator should see beside readiness (e.g. the inbound backlog) with
`readiness_detail`, called from their AppConfig.ready: config imports no app.
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from kombu import Connection

logger = logging.getLogger(__name__)

_details: dict[str, Callable[[], object]] = {}


def readiness_detail(name: str, read: Callable[[], object]) -> None:
    """Show `read()` under `name` in /readyz/'s JSON (informative: it does not decide readiness)."""
    _details[name] = read


def healthz(request):
    """The process is up."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """The database and the broker are reachable."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    ok = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    for name, read in _details.items():
        try:
            body[name] = read()
        except Exception as exc:  # a detail that cannot be read never makes the probe fail
            logger.warning("readiness: %s: %s", name, exc)
            body[name] = "unreadable"
    return JsonResponse(body, status=200 if ok else 503)


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure means not ready
        logger.warning("readiness: database: %s", exc)
        return "unreachable"


def _check_broker() -> str:
    try:
        with Connection(settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
                        connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        logger.warning("readiness: broker %s: %s", settings.CELERY_BROKER_URL.split("@")[-1], exc)
        return "unreachable"
