"""The applier: recorded inbound messages applied in arrival order per number, each exactly once.

A batch reads up to `limit` of the oldest unapplied rows in `id` order and applies each in its own
transaction: the row is locked (`FOR UPDATE SKIP LOCKED`, so concurrent appliers take different rows),
applied with consent/inbound.py and marked applied in that transaction. A number whose row another
applier holds, or whose row failed, is left out from that row on (its later rows wait for the next
batch, in order). A crash rolls back the row in hand, effects and mark alike; a redelivered webhook
never gets here twice (the intake's unique key). (One transaction per batch held the ledger's head
lock for the whole batch and serialised the appliers.) On SQLite, which has no row locks, IMMEDIATE transactions let one
applier in at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..inbound import InboundResult, inbound_message_receive
from ..models import InboundReceipt
from .records import IntakeRecord, message_from_json
from .services import intake_record, intake_trigger

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
MAX_BATCHES = 50  # per task run; a longer backlog queues the next run


@dataclass
class Applied:
    """What one batch did."""

    applied: int = 0  # rows marked applied (outcomes applied, duplicate and ignored)
    waiting: int = 0  # rows left for a later batch: an older row of their number was not in this one
    failed: int = 0  # rows whose effects raised: rolled back, retried later (with the rows after them)
    results: dict[int, InboundResult] = field(default_factory=dict)  # receipt id → what applying it did


def intake_apply_batch(*, limit: int = BATCH_SIZE) -> Applied:
    """Apply up to `limit` of the oldest unapplied rows, in id order per number, each in its own transaction."""
    done = Applied()
    candidates = list(InboundReceipt.objects.filter(applied_at__isnull=True).order_by("id")
                      .values_list("id", "sender")[:limit])
    # Every older unapplied row of a number is among the candidates (they are the oldest rows): a number
    # whose row here was taken by another applier, failed or waits is left for the next batch from then on.
    held: set[str] = set()
    for pk, sender in candidates:
        if sender in held:
            done.waiting += 1
            continue
        try:
            with transaction.atomic():
                row = (InboundReceipt.objects.filter(pk=pk, applied_at__isnull=True).select_for_update(skip_locked=True)
                       .values_list("provider", "message", "received_at").first())
                if row is None:  # another applier has it (or has just applied it)
                    held.add(sender)
                    done.waiting += 1
                    continue
                provider, message, received_at = row
                result = inbound_message_receive(message=message_from_json(message), provider=provider, now=received_at)
                InboundReceipt.objects.filter(pk=pk).update(applied_at=timezone.now(), outcome=result.outcome)
        except Exception as exc:
            # Rolled back, effects and mark alike; the number's later rows wait behind it, in order.
            logger.exception("inbound receipt %s not applied; retried later", pk)
            held.add(sender)
            done.failed += 1
            InboundReceipt.objects.filter(pk=pk).update(attempts=F("attempts") + 1,
                                                        last_error=f"{type(exc).__name__}: {exc}"[:255])
            continue
        done.applied += 1
        done.results[pk] = result
        logger.info("%s inbound %s: %s %s", provider, message.get("provider_message_id", ""), result.outcome,
                    result.intent.kind)
    return done


def intake_apply_pending(*, limit: int = BATCH_SIZE, max_batches: int = MAX_BATCHES) -> int:
    """Apply batches until none is left (or `max_batches`, then queue the next run); the rows applied."""
    applied = 0
    for _ in range(max_batches):
        batch = intake_apply_batch(limit=limit)
        applied += batch.applied
        if batch.applied == 0:
            # Nothing left, or only rows that wait for another applier or for a failed row's retry.
            return applied
    intake_trigger()
    return applied


def intake_apply_records(records: Iterable[IntakeRecord]) -> int:
    """Record messages that come from elsewhere (each once), then apply whatever is unapplied, in order."""
    for record in records:
        intake_record(record)
    return intake_apply_pending()
