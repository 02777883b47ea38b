"""Appending to the consent ledger and reading it back as chained fields.

Appends are serialised by a row lock on the single ChainHead row, taken as the last step
of the caller's transaction, so any number of web and worker processes produce one
gap-free chain. Callers must already be inside `transaction.atomic()`.

Inside `appends_at_end()` (PostgreSQL) an append takes its event's key at once and the chain
fields at the block's end: the head is locked once, for one INSERT of all the block's events and
the commit, instead of from the first append of a long transaction to its end.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
    """Append one event to the chain, in the caller's transaction (or at the end of `appends_at_end()`)."""
    deferred = _deferred.get()
    if deferred is not None:
        if not connection.in_atomic_block:
            raise RuntimeError("event_append must run inside transaction.atomic()")
        head_seq, head_hash = None, ""
    else:
        head_seq, head_hash = _lock_head()
    now = timezone.now()
    event = ConsentEvent(
        seq=None if head_seq is None else head_seq + 1,
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
    if deferred is not None:
        return deferred.add(event)
    event.hash = chain_hash(head_hash, chained_fields(event))
    return rows.ledger_append(event, ChainHead)


class _Deferred:
    """The events of one `appends_at_end()` block, and the keys reserved for them."""

    RESERVE = 64  # keys taken from the sequence at a time

    def __init__(self):
        self.events: list[ConsentEvent] = []
        self.keys: list[int] = []

    def add(self, event: ConsentEvent) -> ConsentEvent:
        if not self.keys:
            self.keys = rows.ids_reserve(ConsentEvent, self.RESERVE)
        event.pk = self.keys.pop(0)
        self.events.append(event)
        return event


_deferred: ContextVar[_Deferred | None] = ContextVar("ledger_deferred", default=None)


@contextmanager
def appends_at_end() -> Iterator[None]:
    """Within the block, `event_append` returns its event with its key but without its place in the chain
    (seq, hashes, recorded_at), which all the block's events get, in order, as the block ends.

    For one transaction's worth of work that reads no event it appended (the applier's batch: one row
    per number). Must run inside `transaction.atomic()`; an error that leaves the block appends nothing
    (and its transaction rolls back). Events do not follow savepoints: a caller inside the block must
    not catch an error after an append and go on. A block inside a block is the outer one. Without row
    locks (SQLite) appends stay immediate.
    """
    if connection.vendor != "postgresql" or _deferred.get() is not None:
        yield
        return
    if not connection.in_atomic_block:
        raise RuntimeError("appends_at_end must run inside transaction.atomic()")
    deferred = _Deferred()
    token = _deferred.set(deferred)
    try:
        yield
    finally:
        _deferred.reset(token)
    if deferred.events:
        _chain_in(deferred.events)


def _chain_in(events: list[ConsentEvent]) -> None:
    """Give deferred events their places after the head (locked until the commit) and insert them at once."""
    head_seq, head_hash = _lock_head()
    now = timezone.now()
    for event in events:
        head_seq += 1
        event.seq, event.recorded_at, event.prev_hash = head_seq, now, head_hash
        event.hash = head_hash = chain_hash(head_hash, chained_fields(event))
    # One batch's events, once per batch: the ORM's two statements (their figure is the batch's, not a row's).
    ConsentEvent.objects.bulk_create(events)
    ChainHead.objects.filter(pk=1).update(seq=head_seq, hash=head_hash)


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

