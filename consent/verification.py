"""Verify the ledger: recompute every hash, check sequence continuity, links and the recorded head.

Verification streams the chain in keyset-paginated chunks of plain tuples (constant memory, no
long-lived cursor or transaction), and can resume from the latest valid signed checkpoint so that
daily runs only walk what was appended since. A full run also holds the chain to that checkpoint,
so a chain rewritten consistently from some point on is still caught.
"""

import hashlib
import json
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count, Max

from .hashing import GENESIS_HASH, format_instant
from .ledger import ROW_FIELDS, chained_fields_from_row, ledger_head  # noqa: F401 (re-exported)
from .models import ConsentEvent

# The columns the ORM path reads, in this order (chained fields, then the two hashes).

@dataclass
class VerificationReport:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""
    checked_from_seq: int = 1
    checkpoint: dict | None = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = {
            "ok": self.ok,
            "events": self.events,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "checked_from_seq": self.checked_from_seq,
            "checkpoint": self.checkpoint,
        }
        if not self.ok:
            data["first_bad_seq"] = self.first_bad_seq
            data["problem"] = self.problem
        return data

    def summary(self) -> str:
        if self.ok:
            since = f" from sequence {self.checked_from_seq}" if self.checked_from_seq > 1 else ""
            return f"Ledger intact: {self.events} events verified{since}; head #{self.head_seq} {self.head_hash}."
        return f"Ledger NOT intact: first bad sequence number {self.first_bad_seq}: {self.problem}"


# hashing.chain_hash, unrolled for the hot loop: same bytes (sorted keys, compact, UTF-8), one shared encoder.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_decode_json = json.JSONDecoder().decode


def _hash_of(prev_hash: str, row: tuple) -> str:
    """chain_hash over a ledger_rows() tuple (its times are already strings, its evidence JSON text)."""
    try:
        evidence = _decode_json(row[12])
    except (TypeError, ValueError):
        evidence = row[12]
    fields = {"seq": row[0], "uuid": row[1], "occurred_at": row[2], "recorded_at": row[3], "kind": row[4],
              "subject": row[5], "topic": row[6], "channel": row[7], "source": row[8], "actor": row[9],
              "text_version": row[10], "text_sha256": row[11], "evidence": evidence}
    payload = b"%s\n%s" % (prev_hash.encode("ascii", "replace"), _CANONICAL.encode(fields).encode("utf-8"))
    return hashlib.sha256(payload).hexdigest()


def event_rows(*, after_seq: int, upto_seq: int, chunk_size: int = 10000, queryset=None, fields=ROW_FIELDS):
    """ORM tuples of `fields` with after_seq < seq <= upto_seq, in sequence order, fetched chunk by chunk."""
    base = (queryset if queryset is not None else ConsentEvent.objects.all()).order_by("seq")
    last = after_seq
    while True:
        chunk = list(base.filter(seq__gt=last, seq__lte=upto_seq).values_list(*fields)[:chunk_size])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1][0]
        if len(chunk) < chunk_size:
            return


# Conditions that ledger_rows() understands: operator -> ORM lookup.
LOOKUPS = {">=": "gte", "<": "lt", "=": "exact"}
CONDITION_COLUMNS = {"occurred_at", "recorded_at", "topic_slug", "channel", "kind", "contact_id"}
_PG_INSTANT = """to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def ledger_rows(*, after_seq: int, upto_seq: int, conditions=(), with_phone: bool = False, chunk_size: int = 10000):
    """Events as plain tuples, ready for hashing and export, in sequence order, chunk by chunk.

    Each tuple: (seq, uuid, occurred_at, recorded_at, kind, subject, topic, channel, source, actor,
    text_version, text_sha256, evidence JSON text, prev_hash, hash[, phone]), times already in the
    chain's format. On PostgreSQL the database formats times and hands JSON over as text, which
    keeps a million-event walk within seconds; elsewhere the ORM reads and Python formats.
    `conditions` are (column, operator, value) with operators ">=", "<", "=".
    """
    for column, operator, _ in conditions:
        if column not in CONDITION_COLUMNS or operator not in LOOKUPS:
            raise ValueError(f"unsupported condition {column} {operator}")
    if connection.vendor == "postgresql":
        yield from _pg_rows(after_seq, upto_seq, conditions, with_phone, chunk_size)
        return
    queryset = ConsentEvent.objects.filter(**{f"{col}__{LOOKUPS[op]}": value for col, op, value in conditions})
    fields = ROW_FIELDS + (("contact__phone",) if with_phone else ())
    for row in event_rows(after_seq=after_seq, upto_seq=upto_seq, chunk_size=chunk_size, queryset=queryset,
                          fields=fields):
        yield (row[0], str(row[1]), format_instant(row[2]), format_instant(row[3]), *row[4:12],
               json.dumps(row[12], sort_keys=True, separators=(",", ":"), ensure_ascii=False), *row[13:])


def _pg_rows(after_seq, upto_seq, conditions, with_phone, chunk_size):
    columns = ["e.seq", "e.uuid::text", _PG_INSTANT.format(col="e.occurred_at"), _PG_INSTANT.format(col="e.recorded_at"),
               "e.kind", "e.subject", "e.topic_slug", "e.channel", "e.source", "e.actor", "e.text_version",
               "e.text_sha256", "e.evidence::text", "e.prev_hash", "e.hash"]
    if with_phone:
        columns.append("e.contact_id")
    where = " ".join(f"AND e.{column} {operator} %s" for column, operator, _ in conditions)
    params = [value for _, _, value in conditions]
    sql = (f"SELECT {', '.join(columns)} FROM consent_consentevent e "
           f"WHERE e.seq > %s AND e.seq <= %s {where} ORDER BY e.seq LIMIT %s")
    last = after_seq
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, [last, upto_seq, *params, chunk_size])
            chunk = cursor.fetchall()
            if not chunk:
                return
            last = chunk[-1][0]
            if with_phone:
                # One lookup per chunk is much cheaper than joining row by row.
                cursor.execute("SELECT id, phone FROM consent_contact WHERE id = ANY(%s)", [list({r[15] for r in chunk})])
                phones = dict(cursor.fetchall())
                yield from (row[:15] + (phones.get(row[15]),) for row in chunk)
            else:
                yield from chunk
            if len(chunk) < chunk_size:
                return


def verify_chain(*, start_seq: int = 1, start_prev_hash: str = GENESIS_HASH, chunk_size: int = 10000,
                 anchor: tuple[int, str] | None = None) -> VerificationReport:
    """Walk the chain from `start_seq` (whose prev_hash must be `start_prev_hash`) to the recorded head.

    `anchor` is a signed (seq, hash) the chain must still pass through, when the walk reaches it.
    """
    head_seq, head_hash = ledger_head()
    expected_seq, prev_hash, count = start_seq, start_prev_hash, 0

    def bad(seq, problem):
        return VerificationReport(ok=False, events=count, head_seq=head_seq, head_hash=head_hash,
                                  first_bad_seq=seq, problem=problem, checked_from_seq=start_seq)

    for row in ledger_rows(after_seq=start_seq - 1, upto_seq=head_seq, chunk_size=chunk_size):
        seq = row[0]
        if seq != expected_seq:
            return bad(expected_seq, f"sequence gap: event {expected_seq} is missing (next is {seq})")
        if row[13] != prev_hash:
            return bad(seq, "prev_hash does not match the previous event's hash (an event was removed or inserted)")
        if _hash_of(prev_hash, row) != row[14]:
            return bad(seq, "hash does not match the event's content (the event was changed)")
        if anchor is not None and seq == anchor[0] and row[14] != anchor[1]:
            return bad(seq, "the chain no longer passes through the signed checkpoint at this sequence number")
        prev_hash = row[14]
        expected_seq += 1
        count += 1
    last_seq = expected_seq - 1
    if last_seq < head_seq:
        return bad(last_seq + 1, f"events from {last_seq + 1} on are missing (the recorded head is {head_seq})")
    if last_seq >= start_seq and head_hash != prev_hash:
        return bad(head_seq, "the recorded chain head does not match the last event")
    problem = _rows_outside_chain(start_seq, head_seq)
    if problem:
        return bad(*problem)
    return VerificationReport(ok=True, events=count, head_seq=head_seq, head_hash=head_hash, checked_from_seq=start_seq)


def _rows_outside_chain(start_seq: int, head_seq: int) -> tuple[int, str] | None:
    """Rows the walk cannot see: beyond the recorded head, duplicated or non-positive sequence numbers."""
    # Read the highest sequence first, then the head: a legitimate append commits its event and
    # the head together, so a committed event above the head read afterwards was not appended by us.
    max_seq = ConsentEvent.objects.aggregate(m=Max("seq"))["m"] or 0
    head_now, _ = ledger_head()
    if max_seq > head_now:
        return head_now + 1, (f"event {max_seq} lies beyond the recorded chain head {head_now} "
                              "(inserted behind the application's back)")
    in_range = ConsentEvent.objects.filter(seq__lte=head_seq)
    if start_seq > 1:
        in_range = in_range.filter(seq__gte=start_seq)
    expected = max(head_seq - start_seq + 1, 0)
    if in_range.count() != expected:
        stray = in_range.filter(seq__lt=1).order_by("seq").values_list("seq", flat=True).first()
        if stray is not None:
            return stray, f"event with an impossible sequence number {stray}"
        dup = (in_range.values("seq").annotate(n=Count("id")).filter(n__gt=1).order_by("seq")
               .values_list("seq", flat=True).first())
        if dup is not None:
            return dup, f"sequence number {dup} is used by more than one event"
        return start_seq, "the number of events does not match the sequence numbers"
    return None


def verify_ledger(*, resume: bool = False, chunk_size: int = 10000) -> VerificationReport:
    """Verify the ledger in full, or (resume=True) from the latest valid signed checkpoint on."""
    from .audit.checkpoints import latest_valid_checkpoint

    found = latest_valid_checkpoint()
    if found is None:
        return verify_chain(chunk_size=chunk_size)
    checkpoint, matches = found
    if resume and matches:
        report = verify_chain(start_seq=checkpoint.seq + 1, start_prev_hash=checkpoint.hash, chunk_size=chunk_size)
    else:
        report = verify_chain(chunk_size=chunk_size, anchor=(checkpoint.seq, checkpoint.hash))
        if report.ok and not matches:
            report.ok, report.first_bad_seq = False, checkpoint.seq
            report.problem = "the event at the signed checkpoint no longer matches it"
    report.checkpoint = checkpoint_info(checkpoint)
    return report


def checkpoint_info(checkpoint) -> dict:
    return {"seq": checkpoint.seq, "hash": checkpoint.hash, "signed_at": format_instant(checkpoint.signed_at),
            "signature": checkpoint.signature}
