"""The applier: recorded inbound messages applied in arrival order per number, each exactly once.

A batch locks the oldest unapplied rows no other applier holds (`FOR UPDATE SKIP LOCKED`), one per
number, and applies them with consent/inbound.py in one transaction, marking them applied in it; their
ledger events are chained in by one statement at the end (`ledger.appends_at_end`), so concurrent
appliers hold the ledger's head only for that statement and the commit. A number's row waits for a
later batch while an older row of it is not this batch's (another applier holds it) or this batch
applies an older one. A batch that raises rolls back whole and is applied again one row per
transaction, so that a row that fails holds back only its own number (and, once failed, rows go one
by one until it is applied). A crash rolls back the batch in hand, effects and marks alike; a
redelivered webhook never gets here twice (the intake's unique key). One transaction per row cost a
commit each, flushed to disk with the ledger's head locked: about 200 rows/s (bench/inbound.py). On
SQLite, which has no row locks, IMMEDIATE transactions let one applier in at a time and appends stay
immediate."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from config.enqueue import publishes_together

from .. import ledger
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
    waiting: int = 0  # rows left for a later batch: an older row of their number is elsewhere or in this batch
    failed: int = 0  # rows whose effects raised: rolled back, retried later (with the rows after them)
    results: dict[int, InboundResult] = field(default_factory=dict)  # receipt id → what applying it did


def intake_apply_batch(*, limit: int = BATCH_SIZE) -> Applied:
    """Apply up to `limit` of the oldest unapplied rows, in id order per number.

    Together in one transaction when it can (`_apply_together`); a batch that raises rolls back whole
    and its rows are applied again one per transaction, so that one bad row holds back only its number.
    Rows that failed before go one by one straight away. The batch's replies go to the broker together
    once it is applied (`publishes_together`: one round trip, not one per reply).
    """
    with publishes_together():
        try:
            together = _apply_together(limit)
        except Exception:
            together = None
            logger.warning("inbound batch rolled back; applying its rows one by one", exc_info=True)
        if together is not None:
            return together
        candidates = list(InboundReceipt.objects.filter(applied_at__isnull=True).order_by("id")
                          .values_list("id", "sender")[:limit])
        # Every older unapplied row of a number is among the candidates (they are the oldest rows): a number
        # whose row here was taken by another applier, failed or waits is left for the next batch from then on.
        return _apply_one_by_one(candidates)


def _apply_together(limit: int) -> Applied | None:
    """One transaction: the oldest rows no other applier holds (SKIP LOCKED), one per number, applied and
    marked; their ledger events are chained in at the end (`ledger.appends_at_end`).

    So concurrent appliers take different rows and hold the ledger's head only for their last statement
    and commit. A number's row is left for a later batch when an older row of that number is not this
    batch's to apply (another applier holds it, or it arrived as this batch began) or when this batch
    applies an older row of it already: each row then reads what the ones before it wrote. None, having
    applied nothing, when a row it locked failed before: those go one by one.
    """
    done = Applied()
    with transaction.atomic(), ledger.appends_at_end():
        locked = list(InboundReceipt.objects.filter(applied_at__isnull=True).order_by("id")
                      .select_for_update(skip_locked=True)
                      .values_list("id", "sender", "provider", "message", "received_at", "attempts")[:limit])
        if not locked:
            return done
        if any(row[-1] for row in locked):
            return None
        first: dict[str, int] = {}
        for pk, sender, *_ in locked:
            first.setdefault(sender, pk)
        older_elsewhere = {sender for sender, oldest in
                           InboundReceipt.objects.filter(applied_at__isnull=True, sender__in=list(first))
                           .exclude(pk__in=[row[0] for row in locked]).values("sender")
                           .annotate(oldest=Min("id")).values_list("sender", "oldest")
                           if oldest < first[sender]}
        by_outcome: dict[str, list[int]] = {}
        providers: dict[int, str] = {}
        for pk, sender, provider, message, received_at, _ in locked:
            if sender in older_elsewhere or first[sender] != pk:
                done.waiting += 1
                continue
            result = inbound_message_receive(message=message_from_json(message), provider=provider, now=received_at,
                                             savepoint=False)
            by_outcome.setdefault(result.outcome, []).append(pk)
            done.results[pk] = result
            providers[pk] = provider
        applied_at = timezone.now()
        for outcome, pks in by_outcome.items():
            InboundReceipt.objects.filter(pk__in=pks).update(applied_at=applied_at, outcome=outcome)
    done.applied = len(done.results)
    for pk, result in done.results.items():
        logger.info("%s inbound %s: %s %s", providers[pk], result.message.provider_message_id if result.message else "",
                    result.outcome, result.intent.kind)
    return done


def _apply_one_by_one(candidates: list[tuple[int, str]]) -> Applied:
    """Each row in its own transaction: a row that raises rolls back alone and holds back its number."""
    done = Applied()
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
