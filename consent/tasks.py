"""Celery tasks: ids in, a service call, an explicit retry policy. Each may run twice safely."""

import logging

from celery import shared_task, signals

from messaging.lifecycle import RETRY_POLICY, RetryLater, retry_delay

from . import messaging, retention, services
from .audit.tasks import ledger_checkpoint_task  # noqa: F401  (registered for autodiscovery)
from .intake import applier, fallback
from .intake import services as intake
from .webhooks import accepted

logger = logging.getLogger(__name__)

MESSAGE_MAX_RETRIES = 8


@shared_task(bind=True, max_retries=MESSAGE_MAX_RETRIES, acks_late=True, **RETRY_POLICY)
def message_deliver_task(self, message_id: int) -> str:
    """Send one transactional message; transient provider errors come back after the retry policy's
    backoff (or the provider's Retry-After), the message waiting in `queued` meanwhile."""
    final = self.request.retries >= self.max_retries
    try:
        return messaging.message_deliver(message_id=message_id, final_attempt=final)
    except RetryLater as later:
        raise self.retry(countdown=retry_delay(self.request.retries, later.outcome.retry_after)) from None


@shared_task
def consents_expire_due_task() -> int:
    """Record `expired` events for consents past their lifetime or window (beat, every 5 minutes)."""
    return services.consents_expire_due()


@shared_task
def revocation_reviews_apply_due_task() -> int:
    """Beat, every minute: reviews still unresolved at their deadline are applied as revocations."""
    return services.revocation_reviews_apply_due()


@shared_task
def messages_upkeep_task() -> dict:
    """Beat, every minute: messages stuck in `sending` by a crash become `unknown`; messages left
    `queued` by a broker outage are handed to the broker again."""
    return {"unknown": messaging.messages_mark_stale_unknown(), "requeued": messaging.messages_requeue_stale()}


@shared_task
def retention_erase_task() -> int:
    """Beat, daily: erase the personal data of contacts past CONSENT_RETENTION_DAYS (idempotent)."""
    return len(retention.retention_erase())


@shared_task
def inbound_fallback_drain_task() -> int:
    """Beat, every few seconds, at worker start and when a webhook joins a waiting fallback: move the
    webhooks kept in Redis during a database outage into the intake table, in order, then queue the
    applier. Safe to run twice (one drain at a time; inserting a receipt again is a no-op)."""
    try:
        moved = fallback.fallback_drain(take=accepted.fallback_entry_take)
    except fallback.DATABASE_UNREACHABLE as exc:
        logger.warning("inbound fallback: the database is still unreachable (%s); the next drain retries", exc)
        return 0
    except fallback.FallbackUnavailable as exc:
        logger.warning("inbound fallback: Redis unreachable (%s); the next drain retries", exc)
        return 0
    if moved:
        intake.intake_trigger()
    return moved


@signals.worker_ready.connect
def _drain_at_worker_start(sender=None, **kwargs):
    """A worker that starts (after a crash, after the database came back) drains what waits at once."""
    if fallback.configured():
        inbound_fallback_drain_task.delay()


@shared_task
def inbound_receipts_prune_task() -> int:
    """Beat, daily: delete the webhooks' receipts applied more than 30 days ago."""
    return intake.intake_receipts_prune()


@shared_task
def inbound_apply_task() -> int:
    """Apply the inbound messages recorded at intake, in order per number (queued by the intake's
    trigger; beat, every INBOUND_APPLY_SWEEP_SECONDS, as the safety net after a lost task or a crash).
    Safe to run twice and concurrently: each batch locks its rows and marks them applied with their effects."""
    intake.trigger_clear()
    return applier.intake_apply_pending()
