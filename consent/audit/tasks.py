"""Beat task: sign the ledger head periodically so that verification can resume from it."""

from celery import shared_task

from .checkpoints import LedgerNotIntact, checkpoint_create


@shared_task(ignore_result=True)
def ledger_checkpoint_task() -> int | None:
    """Verify what was appended since the last checkpoint and sign the head; safe to run twice."""
    try:
        checkpoint = checkpoint_create()
    except LedgerNotIntact:
        return None  # logged as an error by the service; never sign a broken chain
    return checkpoint.seq if checkpoint else 0


@shared_task(ignore_result=True)
def ledger_verify_task() -> bool:
    """Walk the whole chain (beat, daily): resumed runs trust the signed prefix, this one does not."""
    import logging

    from consent.verification import verify_ledger

    report = verify_ledger()
    log = logging.getLogger(__name__)
    if report.ok:
        log.info("%s", report.summary())
    else:
        log.error("%s", report.summary())
    return report.ok
