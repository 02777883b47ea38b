"""The naive baseline for bench/broadcast.py: one Celery task per recipient (same claim, gate and send)."""

from celery import shared_task

from broadcasts.sending import broadcast_send_range


@shared_task(acks_late=True, reject_on_worker_lost=True)
def naive_send_one(broadcast_id: int, contact_id: int) -> int:
    """Send the broadcast to one contact: the way a per-recipient task design would do it."""
    return broadcast_send_range(broadcast_id=broadcast_id, lo=contact_id - 1, hi=contact_id).sent
