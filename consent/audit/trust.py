"""Reading signed checkpoints: which signatures are trusted, and the newest checkpoint the ledger still matches.

Verification reads these; consent.audit.checkpoints verifies the ledger and signs new ones.
"""

import logging
from datetime import datetime

from consent.hashing import GENESIS_HASH, chain_hash, format_instant
from consent.ledger import ROW_FIELDS, chained_fields_from_row
from consent.models import ConsentEvent, LedgerCheckpoint

from . import signing

logger = logging.getLogger(__name__)

CHECKPOINT_TYPE = "consent-ledger-checkpoint"


def checkpoint_payload(*, seq: int, hash: str, signed_at: datetime, actions: tuple[int, str] | None = None) -> dict:
    """What a checkpoint signature covers: the ledger head and, since the staff action log, that log's head too.

    Checkpoints signed before the log existed carry no `actions` and are checked over what they signed.
    """
    payload = {"type": CHECKPOINT_TYPE, "seq": seq, "hash": hash, "signed_at": format_instant(signed_at)}
    if actions is not None:
        payload["actions"] = {"seq": actions[0], "hash": actions[1]}
    return payload


def checkpoint_actions(checkpoint: LedgerCheckpoint) -> tuple[int, str] | None:
    """The staff action head a checkpoint signed, or None for one signed before the log."""
    return None if checkpoint.actions_seq is None else (checkpoint.actions_seq, checkpoint.actions_hash)


def checkpoint_signer(checkpoint: LedgerCheckpoint, *, current_only: bool = False):
    """The trusted public key whose signature the checkpoint carries, or None."""
    payload = checkpoint_payload(seq=checkpoint.seq, hash=checkpoint.hash, signed_at=checkpoint.signed_at,
                                 actions=checkpoint_actions(checkpoint))
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
    for checkpoint in LedgerCheckpoint.objects.order_by("-seq", "-signed_at")[:scan]:
        if not checkpoint_signature_valid(checkpoint):
            logger.warning("ledger checkpoint %s at seq %s has an invalid signature; ignored", checkpoint.pk, checkpoint.seq)
            continue
        if checkpoint.seq == 0:  # signed over staff actions alone, before the first ledger event
            return checkpoint, checkpoint.hash == GENESIS_HASH
        rows = list(ConsentEvent.objects.filter(seq=checkpoint.seq).values_list(*ROW_FIELDS)[:2])
        matches = (
            len(rows) == 1
            and rows[0][14] == checkpoint.hash
            and chain_hash(rows[0][13], chained_fields_from_row(rows[0])) == checkpoint.hash
        )
        return checkpoint, matches
    return None


def sink_record_signature_valid(record: dict) -> bool:
    """Whether a record read from the sink carries a signature by a trusted key over its seq, hash and time."""
    payload = {"type": CHECKPOINT_TYPE, "seq": record.get("seq"), "hash": record.get("hash"),
               "signed_at": record.get("signed_at")}
    if "actions" in record:
        payload["actions"] = record["actions"]
    signature = record.get("signature")
    if not isinstance(signature, str) or record.get("type", CHECKPOINT_TYPE) != CHECKPOINT_TYPE:
        return False
    return any(signing.signature_valid(payload, signature, key) for key in signing.trusted_public_keys())
