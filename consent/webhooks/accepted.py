"""Where a webhook goes once its signature verified and its payload parsed (rule 15).

Its inbound messages are recorded at intake (consent/intake: one idempotent INSERT each) and its
status or preference updates applied, in the request; or, when the database cannot be reached or
webhooks already wait in the inbound fallback, all of it is kept there (consent/intake/fallback.py)
and the drain brings it back through `fallback_entry_take`. `webhook_accept` says whether the
webhook is durably recorded: only then may the provider be told 200.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.cache import cache

from config.enqueue import enqueue
from consent import inbound
from consent.intake import fallback
from consent.intake.records import IntakeRecord
from consent.intake.services import intake_record, intake_trigger

from . import parsers

logger = logging.getLogger(__name__)

TWILIO = "twilio"
WHATSAPP_CLOUD = "whatsapp_cloud"
# The kinds of entries the fallback keeps.
RECORD = "record"  # IntakeRecord.to_json(): inserted into the intake table by the drain
TWILIO_STATUS = "twilio_status"  # {"form": {field: value}, "reference": ref}
WHATSAPP_UPDATES = "whatsapp_updates"  # {"body": the raw JSON text}: its statuses and preferences (not its messages)
DRAIN_TASK = "consent.tasks.inbound_fallback_drain_task"
KICK_KEY = "inbound-fallback:kicked"


@dataclass
class Accepted:
    """What became of a verified webhook that was durably recorded."""

    kept: bool = False  # in the fallback (nothing of it is in the database yet)
    new: list[bool] = field(default_factory=list)  # per record, at intake: True if new, False if a redelivery
    updates: object = None  # what `apply_updates` returned


def twilio_status_apply(form, *, reference: str = "") -> None:
    """A verified Twilio status callback, parsed (PayloadError) and applied."""
    inbound.provider_status_apply(update=parsers.parse_twilio_status(form, reference=reference), provider=TWILIO)


def whatsapp_updates_apply(batch: parsers.WhatsAppBatch) -> dict:
    """The statuses and preference updates of one verified WhatsApp Cloud POST (its messages go to the intake)."""
    for update in batch.statuses:
        inbound.provider_status_apply(update=update, provider=WHATSAPP_CLOUD)
    for preference in batch.preferences:
        inbound.whatsapp_preference_apply(preference=preference)
    return {"statuses": len(batch.statuses), "preferences": len(batch.preferences)}


def fallback_entry_take(entry: fallback.Entry) -> None:
    """The drain's side, in its transaction: a kept record goes to the intake table (once), a kept update is
    applied as at its arrival. The intake's applier applies the records afterwards."""
    payload = entry.payload
    if entry.kind == RECORD:
        intake_record(IntakeRecord.from_json(payload))
    elif entry.kind == TWILIO_STATUS:
        twilio_status_apply(payload["form"], reference=payload.get("reference", ""))
    elif entry.kind == WHATSAPP_UPDATES:
        whatsapp_updates_apply(parsers.parse_whatsapp_body(payload["body"].encode("utf-8")))
    else:
        raise ValueError(f"unknown inbound fallback entry kind {entry.kind!r}")


def webhook_accept(*, records: list[IntakeRecord] = (), update: tuple[str, dict] | None = None,
                   apply_updates: Callable[[], object] | None = None) -> Accepted | None:
    """Record a verified webhook: its `records` at intake and its update applied, or all kept in the fallback.

    Kept when the database cannot be reached, and also while webhooks already wait in the fallback,
    so that none overtakes an older one from the same number (unless Redis stops answering just then:
    it is recorded at intake rather than lost). None only when it could be neither
    recorded nor kept (the caller answers 503). Any other error propagates. Queues the applier when a
    record is new.
    """
    def entries() -> list[tuple[str, dict]]:  # built only when kept (a webhook's JSON is not free)
        return [(RECORD, record.to_json()) for record in records] + ([update] if update else [])

    if fallback.fallback_pending():
        kept = _keep(entries(), kick=True)
        if kept is not None:
            return kept
        # Redis went away between the two calls: the database is then the one durable place left (and
        # nothing can be drained from the stream before Redis is back anyway).
    accepted = Accepted()
    try:
        for record in records:
            accepted.new.append(intake_record(record))
        if apply_updates is not None:
            accepted.updates = apply_updates()
    except fallback.DATABASE_UNREACHABLE as exc:
        logger.warning("webhook: the database cannot be reached (%s); keeping it in the inbound fallback",
                       type(exc).__name__)
        # Records already inserted are inserted again by the drain, which is a no-op.
        return _keep(entries(), kick=False)
    finally:
        if any(accepted.new):
            intake_trigger()
    return accepted


def _keep(entries: list[tuple[str, dict]], *, kick: bool) -> Accepted | None:
    try:
        fallback.fallback_append(entries)
    except fallback.FallbackUnavailable as exc:
        logger.error("webhook could be neither recorded nor kept in the inbound fallback: %s", exc)
        return None
    if kick:
        _kick_drain()
    return Accepted(kept=True)


def _kick_drain() -> None:
    """Ask a worker to drain now (at most once a second); the beat drains every few seconds anyway."""
    try:
        if cache.add(KICK_KEY, 1, timeout=1):
            enqueue(DRAIN_TASK)
    except Exception as exc:  # the broker or the cache is down: the webhook is kept, the beat will drain it
        logger.warning("inbound fallback: could not ask for a drain now (%s)", exc)
