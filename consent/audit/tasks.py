"""Beat tasks: sign the ledger head periodically (signer queue only), and verify everything daily."""

import logging

from celery import shared_task

from consent.verification import verify_ledger, verify_state

from .checkpoints import LedgerNotIntact, checkpoint_create


@shared_task(ignore_result=True)
def ledger_checkpoint_task() -> int | None:
    """Verify what was appended since the last checkpoint and sign the head; safe to run twice.

    Routed to the `audit-signer` queue: only the signer process holds AUDIT_SIGNING_KEY.
    """
    try:
        checkpoint = checkpoint_create()
    except LedgerNotIntact:
        return None  # logged as an error by the service; never sign a broken chain
    return checkpoint.seq if checkpoint else 0


@shared_task(ignore_result=True)
def ledger_verify_task() -> bool:
    """Walk the whole chain (beat, daily): resumed runs trust the signed prefix, this one does not."""
    log = logging.getLogger(__name__)
    ok = True
    for report in (verify_ledger(), verify_state()):
        ok = ok and report.ok
        (log.info if report.ok else log.error)("%s", report.summary())
    return ok
