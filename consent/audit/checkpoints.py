"""Signed checkpoints: an Ed25519 signature over the chain head (sequence, hash, time).

A checkpoint is only ever signed over a head that verification has just accepted. Its row is not
trusted by itself: a checkpoint counts only if its signature verifies with the configured key.
Every checkpoint is also written, once, to the sink outside the database (consent.audit.sink).
"""

import logging
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from consent.models import LedgerCheckpoint
from consent.verification import verify_ledger

from . import signing
from .actions import verify_actions
from .sink import checkpoint_sink
from .trust import checkpoint_actions, checkpoint_payload, checkpoint_signature_valid, checkpoint_signer

logger = logging.getLogger(__name__)


class LedgerNotIntact(Exception):
    """Verification failed, so the head must not be signed."""

    def __init__(self, report):
        super().__init__(report.summary())
        self.report = report


def checkpoint_create(*, now: datetime | None = None) -> LedgerCheckpoint | None:
    """Verify (from the last checkpoint) and sign the current head; reuse a checkpoint already at the head.

    Returns None on an empty ledger; raises LedgerNotIntact if verification fails, SigningKeyMissing
    outside the signer process, CheckpointSinkError if the sink cannot take it.
    """
    if not signing.has_private_key():
        signing.private_key()  # raises SigningKeyMissing, naming the process that signs
    report = verify_ledger(resume=True)
    if not report.ok:
        logger.error("not signing a checkpoint: %s", report.summary())
        raise LedgerNotIntact(report)
    actions = verify_actions()
    if not actions.ok:
        # Reported like a ledger failure (callers handle one exception), naming the action log.
        report.ok, report.first_bad_seq, report.problem = False, None, actions.summary()
        logger.error("not signing a checkpoint: %s", actions.summary())
        raise LedgerNotIntact(report)
    if report.head_seq == 0 and actions.head_seq == 0:
        return None
    existing = LedgerCheckpoint.objects.filter(
        Q(seq=report.head_seq) & Q(hash=report.head_hash) & Q(actions_seq=actions.head_seq)
        & Q(actions_hash=actions.head_hash)).order_by("-signed_at")
    for checkpoint in existing[:5]:
        if checkpoint_signature_valid(checkpoint, current_only=True):  # exports are checked with today's key
            checkpoint_sink().write(checkpoint_record(checkpoint))  # a no-op when it is there already
            return checkpoint
    signed_at = now or timezone.now()
    payload = checkpoint_payload(seq=report.head_seq, hash=report.head_hash, signed_at=signed_at,
                                 actions=(actions.head_seq, actions.head_hash))
    checkpoint = LedgerCheckpoint(seq=report.head_seq, hash=report.head_hash, signed_at=signed_at,
                                  actions_seq=actions.head_seq, actions_hash=actions.head_hash,
                                  signature=signing.sign(payload), public_key=signing.public_key_pem())
    # Outside the database first: a checkpoint the sink lacks would not protect the tail.
    checkpoint_sink().write(checkpoint_record(checkpoint))
    checkpoint.save()
    return checkpoint


def checkpoint_record(checkpoint: LedgerCheckpoint) -> dict:
    """What the sink keeps of a checkpoint: the signed payload, its signature and the signing key."""
    return {**checkpoint_payload(seq=checkpoint.seq, hash=checkpoint.hash, signed_at=checkpoint.signed_at,
                                 actions=checkpoint_actions(checkpoint)),
            "signature": checkpoint.signature, "public_key": checkpoint.public_key}


def checkpoint_as_dict(checkpoint: LedgerCheckpoint) -> dict:
    """A checkpoint as published: the signed payload, its signature and the key that made it."""
    return {
        **checkpoint_payload(seq=checkpoint.seq, hash=checkpoint.hash, signed_at=checkpoint.signed_at,
                             actions=checkpoint_actions(checkpoint)),
        "signature": checkpoint.signature,
        "key_id": signing.key_id(checkpoint_signer(checkpoint) or signing.public_key()),
    }
