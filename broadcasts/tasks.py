"""Celery tasks for broadcasts: ids in, a service call, an explicit retry policy.

Every task may run twice (duplicates, redelivery after a lost worker): claims in the database,
not the broker, decide what is sent, so `acks_late` + `reject_on_worker_lost` are safe here.
"""

from celery import shared_task

from messaging.lifecycle import RETRY_POLICY

from . import sending, services

MAX_RANGE_RETRIES = 50


@shared_task
def broadcasts_tick_task() -> dict:
    """Beat: launch due broadcasts; wake deferred rows; recover lost tasks; finish what is done."""
    return services.broadcasts_tick()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def broadcast_launch_task(broadcast_id: int) -> bool:
    """Launch one due broadcast now (the beat would do it on its next tick anyway)."""
    return services.broadcast_launch(broadcast_id=broadcast_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def broadcast_fanout_task(broadcast_id: int) -> int:
    """Create the delivery rows of a launched broadcast, enqueueing their send batches as it goes."""
    return services.broadcast_fanout(broadcast_id=broadcast_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_RANGE_RETRIES, **RETRY_POLICY)
def broadcast_send_range_task(self, broadcast_id: int, lo: int, hi: int | None) -> dict:
    """Send the open deliveries of one contact-id range; rows that met a transient provider error wait
    for the retry policy's backoff (or the provider's Retry-After), and the task comes back for them."""
    result = sending.broadcast_send_range(broadcast_id=broadcast_id, lo=lo, hi=hi)
    # Rows waiting for a retry carry their `not_before`; the beat wakes them too, so an eager run
    # (tests, tools) leaves them to it instead of retrying inline before they are due.
    if result.retry_in is not None and not result.stopped and not self.request.is_eager \
            and self.request.retries < self.max_retries:
        raise self.retry(countdown=min(result.retry_in, RETRY_POLICY["retry_backoff_max"]))
    return {"claimed": result.claimed, "sent": result.sent, "failed": result.failed, "skipped": result.skipped,
            "deferred": result.deferred, "unknown": result.unknown, "stopped": result.stopped}
