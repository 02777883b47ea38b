"""Celery tasks: ids in, a service call, an explicit retry policy. Each may run twice safely."""

from celery import shared_task

from messaging.providers import TransientProviderError

from . import messaging, services
from .audit.tasks import ledger_checkpoint_task  # noqa: F401  (registered for autodiscovery)

MESSAGE_MAX_RETRIES = 8


@shared_task(bind=True, max_retries=MESSAGE_MAX_RETRIES, acks_late=True)
def message_deliver_task(self, message_id: int) -> str:
    """Send one transactional message; transient provider errors retry with backoff."""
    final = self.request.retries >= self.max_retries
    try:
        return messaging.message_deliver(message_id=message_id, final_attempt=final)
    except TransientProviderError as exc:
        countdown = exc.retry_after if exc.retry_after is not None else min(600, 5 * 2**self.request.retries)
        raise self.retry(exc=exc, countdown=countdown) from None


@shared_task
def consents_expire_due_task() -> int:
    """Record `expired` events for consents past their lifetime or window (beat, every 5 minutes)."""
    return services.consents_expire_due()


@shared_task
def messages_upkeep_task() -> dict:
    """Beat, every minute: messages stuck in `sending` by a crash become `unknown`; messages left
    `queued` by a broker outage are handed to the broker again."""
    return {"unknown": messaging.messages_mark_stale_unknown(), "requeued": messaging.messages_requeue_stale()}
