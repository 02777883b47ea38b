"""What /readyz/ shows of inbound: webhooks waiting in the fallback (and set aside by its drain), and
messages recorded at intake and not applied yet. Each is a count, "unreachable" when its store does not
answer, or null for the fallback without one (no REDIS_URL)."""

from __future__ import annotations

import logging

from ..models import InboundReceipt
from .fallback import DATABASE_UNREACHABLE, inbound_backlog

logger = logging.getLogger(__name__)


def intake_backlog() -> dict:
    backlog = inbound_backlog()
    try:
        # The partial index on unapplied rows: a handful at any time, the backlog after an outage.
        backlog["unapplied"] = InboundReceipt.objects.filter(applied_at__isnull=True).count()
    except DATABASE_UNREACHABLE as exc:
        logger.warning("readiness: unapplied receipts cannot be counted: %s", type(exc).__name__)
        backlog["unapplied"] = "unreachable"
    return backlog
