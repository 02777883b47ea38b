"""Appending to the consent ledger and reading it back as chained fields.

Appends are serialised by a row lock on the single ChainHead row, taken as the last step
of the caller's transaction, so any number of web and worker processes produce one
gap-free chain. Callers must already be inside `transaction.atomic()`.
"""

from datetime import datetime

from django.db import connection
from django.utils import timezone

from . import rows
from .hashing import GENESIS_HASH, chain_hash, format_instant, phone_pseudonym
from .models import ChainHead, ConsentEvent, Contact, Topic, TopicText
from .pseudonym_key import pseudonym_key


def pseudonym_for(e164: str) -> str:
    return phone_pseudonym(e164, pseudonym_key())


# An event as a tuple, in the order the ledger is read back in bulk (verification, export, proof).
ROW_FIELDS = ("seq", "uuid", "occurred_at", "recorded_at", "kind", "subject", "topic_slug", "channel", "source",
              "actor", "text_version", "text_sha256", "evidence", "prev_hash", "hash")


def chained_fields_from_row(row: tuple) -> dict:
    """The fields of an event (read as a ROW_FIELDS tuple) that its hash covers, as the hash sees them."""
    return {
        "seq": row[0],
        "uuid": str(row[1]),
        "occurred_at": format_instant(row[2]),
        "recorded_at": format_instant(row[3]),
        "kind": row[4],
        "subject": row[5],
        "topic": row[6],
        "channel": row[7],
        "source": row[8],
        "actor": row[9],
        "text_version": row[10],
        "text_sha256": row[11],
        "evidence": row[12],
    }


def chained_fields(event: ConsentEvent) -> dict:
    """The fields of an event that its hash covers, as the hash sees them."""
    return chained_fields_from_row(tuple(getattr(event, name) for name in ROW_FIELDS))


def _lock_head() -> tuple[int, str]:
    """(seq, hash) of the chain head, row-locked until the caller's transaction ends."""
    if not connection.in_atomic_block:
        raise RuntimeError("event_append must run inside transaction.atomic()")
    row = rows.ledger_head_lock(ChainHead)
    if row is None:
        # First append on a fresh database: create the head (racing creators collide on the pk).
        ChainHead.objects.get_or_create(pk=1, defaults={"seq": 0, "hash": GENESIS_HASH})
        row = rows.ledger_head_lock(ChainHead)
    return row


def event_append(
    *,
    kind: str,
    contact: Contact,
    source: str,
    actor: str,
    topic: Topic | None = None,
    channel: str = "",
    text: TopicText | None = None,
    evidence: dict | None = None,
    occurred_at: datetime | None = None,
) -> ConsentEvent:
    """Append one event to the chain, in the caller's transaction."""
    head_seq, head_hash = _lock_head()
    now = timezone.now()
    event = ConsentEvent(
        seq=head_seq + 1,
        occurred_at=occurred_at or now,
        recorded_at=now,
        kind=kind,
        contact=contact,
        subject=contact.phone_pseudonym,
        topic=topic,
        topic_slug=topic.slug if topic else "",
        channel=channel or "",
        source=source,
        actor=actor,
        text=text,
        text_version=text.version if text else None,
        text_sha256=text.sha256 if text else "",
        evidence=_clean_evidence(evidence or {}),
        prev_hash=head_hash,
    )
    event.hash = chain_hash(head_hash, chained_fields(event))
    return rows.ledger_append(event, ChainHead)


def _clean_evidence(evidence: dict) -> dict:
    """Evidence as it will read back from the database: JSON types only, no None values."""
    cleaned = {}
    for key, value in evidence.items():
        if value is None or value == "":
            continue
        if isinstance(value, datetime):
            value = format_instant(value)
        elif isinstance(value, float):
            value = repr(value)  # floats do not survive every JSON store identically
        cleaned[str(key)] = value
    return cleaned


def ledger_head() -> tuple[int, str]:
    head = ChainHead.objects.filter(pk=1).first()
    return (head.seq, head.hash) if head else (0, GENESIS_HASH)

