"""The applier: recorded inbound messages applied in arrival order per number, each exactly once.

A batch reads up to `limit` of the oldest unapplied rows in `id` order, locks those no other applier
holds (`FOR UPDATE SKIP LOCKED`) and applies them with consent/inbound.py in one transaction, marking
them applied in it. A number whose row another applier holds is left out from that row on (its later
rows wait for the next batch, in order). A batch that raises rolls back whole and is applied again one
row per transaction, so that a row that fails holds back only its own number (and, once failed, is
tried alone from then on). A crash rolls back the batch in hand, effects and marks alike; a redelivered
webhook never gets here twice (the intake's unique key). One transaction per row cost a commit each,
flushed to disk with the ledger's head locked: about 200 rows/s (bench/inbound.py). On SQLite, which
has no row locks, IMMEDIATE transactions let one applier in at a time."""

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
    """Apply up to `limit` of the oldest unapplied rows, in id order per number.

    Together in one transaction when it can (one commit for the batch); a batch that raises rolls back
    whole and is applied again one row per transaction, so that one bad row holds back only its number.
    Rows that failed before go one by one straight away.
    """
    candidates = list(InboundReceipt.objects.filter(applied_at__isnull=True).order_by("id")
                      .values_list("id", "sender", "attempts")[:limit])
    # Every older unapplied row of a number is among the candidates (they are the oldest rows): a number
    # whose row here was taken by another applier, failed or waits is left for the next batch from then on.
    if len(candidates) > 1 and not any(attempts for _, _, attempts in candidates):
        try:
            return _apply_together([(pk, sender) for pk, sender, _ in candidates])
        except Exception:
            logger.warning("inbound batch of %s rows rolled back; applying them one by one", len(candidates),
                           exc_info=True)
    return _apply_one_by_one([(pk, sender) for pk, sender, _ in candidates])


def _apply_together(candidates: list[tuple[int, str]]) -> Applied:
    """One transaction: the candidates this applier could lock (SKIP LOCKED), their effects, their marks.

    The ledger's head is locked from the batch's first append to its commit, so concurrent appliers
    append one batch after the other; what they save is a commit (and its flush to disk) per row and
    the row's own lock, savepoint and mark statements.
    """
    done = Applied()
    with transaction.atomic():
        locked = {pk: (provider, message, received_at) for pk, provider, message, received_at in
                  InboundReceipt.objects.filter(pk__in=[pk for pk, _ in candidates], applied_at__isnull=True)
                  .select_for_update(skip_locked=True).values_list("id", "provider", "message", "received_at")}
        held: set[str] = set()
        by_outcome: dict[str, list[int]] = {}
        for pk, sender in candidates:
            if sender in held or pk not in locked:  # another applier has it (or has just applied it)
                held.add(sender)
                done.waiting += 1
                continue
            provider, message, received_at = locked[pk]
            result = inbound_message_receive(message=message_from_json(message), provider=provider, now=received_at,
                                             savepoint=False)
            by_outcome.setdefault(result.outcome, []).append(pk)
            done.results[pk] = result
        applied_at = timezone.now()
        for outcome, pks in by_outcome.items():
            InboundReceipt.objects.filter(pk__in=pks).update(applied_at=applied_at, outcome=outcome)
    done.applied = len(done.results)
    for result in done.results.values():
        logger.info("inbound %s: %s %s", result.message.provider_message_id if result.message else "",
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
