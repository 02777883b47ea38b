"""Signed checkpoints: an Ed25519 signature over the chain head (sequence, hash, time).

A checkpoint is only ever signed over a head that verification has just accepted. Its row is not
trusted by itself: a checkpoint counts only if its signature verifies with the configured key.
Every checkpoint is also written, once, to the sink outside the database (consent.audit.sink).
"""

import logging
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from consent.hashing import chain_hash, format_instant
from consent.models import ConsentEvent, LedgerCheckpoint

from . import signing
from .sink import checkpoint_sink

logger = logging.getLogger(__name__)

CHECKPOINT_TYPE = "consent-ledger-checkpoint"


def checkpoint_payload(*, seq: int, hash: str, signed_at: datetime) -> dict:
    """What a checkpoint signature covers."""
    return {"type": CHECKPOINT_TYPE, "seq": seq, "hash": hash, "signed_at": format_instant(signed_at)}


def checkpoint_signer(checkpoint: LedgerCheckpoint, *, current_only: bool = False):
    """The trusted public key whose signature the checkpoint carries, or None."""
    payload = checkpoint_payload(seq=checkpoint.seq, hash=checkpoint.hash, signed_at=checkpoint.signed_at)
    keys = (signing.public_key(),) if current_only else signing.trusted_public_keys()
    for key in keys:
        if signing.signature_valid(payload, checkpoint.signature, key):
            return key
    return None


def checkpoint_signature_valid(checkpoint: LedgerCheckpoint, *, current_only: bool = False) -> bool:
    return checkpoint_signer(checkpoint, current_only=current_only) is not None


def latest_valid_checkpoint(*, scan: int = 50) -> tuple[LedgerCheckpoint, bool] | None:
    """The newest checkpoint signed by the current key, and whether the ledger still matches it.

    "Matches" means the event at the checkpoint's sequence number still carries the signed hash
    and that hash still recomputes from the event's content and prev_hash.
    """
    from consent.verification import ROW_FIELDS, chained_fields_from_row

    for checkpoint in LedgerCheckpoint.objects.order_by("-seq", "-signed_at")[:scan]:
        if not checkpoint_signature_valid(checkpoint):
            logger.warning("ledger checkpoint %s at seq %s has an invalid signature; ignored", checkpoint.pk, checkpoint.seq)
            continue
        rows = list(ConsentEvent.objects.filter(seq=checkpoint.seq).values_list(*ROW_FIELDS)[:2])
        matches = (
            len(rows) == 1
            and rows[0][14] == checkpoint.hash
            and chain_hash(rows[0][13], chained_fields_from_row(rows[0])) == checkpoint.hash
        )
        return checkpoint, matches
    return None


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
    from consent.verification import verify_ledger

    if not signing.has_private_key():
        signing.private_key()  # raises SigningKeyMissing, naming the process that signs
    report = verify_ledger(resume=True)
    if not report.ok:
        logger.error("not signing a checkpoint: %s", report.summary())
        raise LedgerNotIntact(report)
    if report.head_seq == 0:
        return None
    existing = LedgerCheckpoint.objects.filter(Q(seq=report.head_seq) & Q(hash=report.head_hash)).order_by("-signed_at")
    for checkpoint in existing[:5]:
        if checkpoint_signature_valid(checkpoint, current_only=True):  # exports are checked with today's key
            checkpoint_sink().write(checkpoint_record(checkpoint))  # a no-op when it is there already
            return checkpoint
    signed_at = now or timezone.now()
    payload = checkpoint_payload(seq=report.head_seq, hash=report.head_hash, signed_at=signed_at)
    checkpoint = LedgerCheckpoint(seq=report.head_seq, hash=report.head_hash, signed_at=signed_at,
                                  signature=signing.sign(payload), public_key=signing.public_key_pem())
    # Outside the database first: a checkpoint the sink lacks would not protect the tail.
    checkpoint_sink().write(checkpoint_record(checkpoint))
    checkpoint.save()
    return checkpoint


def checkpoint_record(checkpoint: LedgerCheckpoint) -> dict:
    """What the sink keeps of a checkpoint: the signed payload, its signature and the signing key."""
    return {**checkpoint_payload(seq=checkpoint.seq, hash=checkpoint.hash, signed_at=checkpoint.signed_at),
            "signature": checkpoint.signature, "public_key": checkpoint.public_key}


def sink_record_signature_valid(record: dict) -> bool:
    """Whether a record read from the sink carries a signature by a trusted key over its seq, hash and time."""
    payload = {"type": CHECKPOINT_TYPE, "seq": record.get("seq"), "hash": record.get("hash"),
               "signed_at": record.get("signed_at")}
    signature = record.get("signature")
    if not isinstance(signature, str) or record.get("type", CHECKPOINT_TYPE) != CHECKPOINT_TYPE:
        return False
    return any(signing.signature_valid(payload, signature, key) for key in signing.trusted_public_keys())


def checkpoint_as_dict(checkpoint: LedgerCheckpoint) -> dict:
    """A checkpoint as published: the signed payload, its signature and the key that made it."""
    return {
        **checkpoint_payload(seq=checkpoint.seq, hash=checkpoint.hash, signed_at=checkpoint.signed_at),
        "signature": checkpoint.signature,
        "key_id": signing.key_id(checkpoint_signer(checkpoint) or signing.public_key()),
    }
