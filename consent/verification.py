"""Verify the ledger: recompute every hash, check sequence continuity, links, the recorded head and
that each event's subject is its contact's pseudonym; and (verify_state) that the consent rows are
what replaying the ledger gives.

Verification streams the chain in keyset-paginated chunks of plain tuples (constant memory, no
long-lived cursor or transaction), and can resume from the latest valid signed checkpoint so that
daily runs only walk what was appended since. Every run also holds the chain to the latest signed
checkpoint, in the database and in the sink outside it, so a chain rewritten consistently from
some point on, or truncated, is still caught.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Count, F, Max, Min
from django.db.models.fields.json import KT

from .audit.sink import CheckpointSinkError, checkpoint_sink
from .audit.trust import latest_valid_checkpoint, sink_record_signature_valid
from .hashing import GENESIS_HASH, chain_hash, format_instant
from .ledger import ROW_FIELDS, chained_fields_from_row, ledger_head  # noqa: F401 (re-exported)
from .models import Consent, ConsentEvent, ConsentStatus, Contact, EventKind, Source, Suppression, Topic

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
    external_checkpoint: dict | None = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = {
            "ok": self.ok,
            "events": self.events,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "checked_from_seq": self.checked_from_seq,
            "checkpoint": self.checkpoint,
            "external_checkpoint": self.external_checkpoint,
        }
        if not self.ok:
            data["first_bad_seq"] = self.first_bad_seq
            data["problem"] = self.problem
        return data

    def summary(self) -> str:
        if self.ok:
            since = f" from sequence {self.checked_from_seq}" if self.checked_from_seq > 1 else ""
            return f"Ledger intact: {self.events} events verified{since}; head #{self.head_seq} {self.head_hash}."
        if self.first_bad_seq is None:
            return f"Ledger NOT verified: {self.problem}"
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

    moved = _first_event_not_of_its_subject(start_seq, head_seq)
    for row in ledger_rows(after_seq=start_seq - 1, upto_seq=head_seq, chunk_size=chunk_size):
        seq = row[0]
        if seq != expected_seq:
            return bad(expected_seq, f"sequence gap: event {expected_seq} is missing (next is {seq})")
        if row[13] != prev_hash:
            return bad(seq, "prev_hash does not match the previous event's hash (an event was removed or inserted)")
        if _hash_of(prev_hash, row) != row[14]:
            return bad(seq, "hash does not match the event's content (the event was changed)")
        if seq == moved:
            return bad(seq, "the event's subject is not its contact's pseudonym (the event was moved to another contact)")
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


def _first_event_not_of_its_subject(start_seq: int, head_seq: int) -> int | None:
    """The first event whose contact row's pseudonym is not the event's subject (one join, no rows read)."""
    # The contact reference is outside the hash; the subject pseudonym inside it ties the two.
    return (ConsentEvent.objects.filter(seq__gte=start_seq, seq__lte=head_seq)
            .exclude(subject=F("contact__phone_pseudonym")).aggregate(first=Min("seq"))["first"])


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
    """Verify the ledger in full, or (resume=True) from the latest valid signed checkpoint on.

    Either way the ledger must still pass through the latest checkpoint kept in the sink outside
    the database, with its head at or after it.
    """
    try:  # before the head is read, so that a checkpoint signed meanwhile is never ahead of it
        sink = checkpoint_sink()
        external = sink.latest()
    except (CheckpointSinkError, ImproperlyConfigured) as exc:
        head_seq, head_hash = ledger_head()
        return VerificationReport(ok=False, events=0, head_seq=head_seq, head_hash=head_hash,
                                  problem=f"the checkpoint sink cannot be read, so the tail cannot be checked: {exc}")
    found = latest_valid_checkpoint()
    if found is None:
        report = verify_chain(chunk_size=chunk_size)
    else:
        checkpoint, matches = found
        if resume and matches:
            report = verify_chain(start_seq=checkpoint.seq + 1, start_prev_hash=checkpoint.hash, chunk_size=chunk_size)
        else:
            report = verify_chain(chunk_size=chunk_size, anchor=(checkpoint.seq, checkpoint.hash))
            if report.ok and not matches:
                report.ok, report.first_bad_seq = False, checkpoint.seq
                report.problem = "the event at the signed checkpoint no longer matches it"
        report.checkpoint = checkpoint_info(checkpoint)
    if external is not None:
        report.external_checkpoint = {"seq": external["seq"], "hash": external["hash"],
                                      "signed_at": external["signed_at"], "location": external.get("location", "")}
        if report.ok:
            problem = _external_checkpoint_problem(external, report.head_seq)
            if problem:
                report.ok, report.first_bad_seq, report.problem = False, *problem
    return report


def _external_checkpoint_problem(record: dict, head_seq: int) -> tuple[int | None, str] | None:
    """Why the ledger does not pass through the sink's latest checkpoint, or None if it does."""
    where = record.get("location") or "the checkpoint sink"
    if not sink_record_signature_valid(record):
        return None, (f"the latest checkpoint in the sink ({where}) carries no valid signature by a trusted key "
                      "(after a key rotation, list the old public key in AUDIT_PREVIOUS_PUBLIC_KEYS)")
    seq, signed_hash = record["seq"], record["hash"]
    if head_seq < seq:
        return head_seq + 1, (f"the ledger ends at #{head_seq}, before the checkpoint kept outside the database "
                              f"at #{seq} ({where}): events were removed")
    if seq == 0:  # signed over staff actions alone, before the first ledger event
        return None if signed_hash == GENESIS_HASH else (None, f"the checkpoint kept outside the database ({where}) "
                                                               "signs an empty ledger with a hash that is not genesis")
    rows = list(ConsentEvent.objects.filter(seq=seq).values_list(*ROW_FIELDS)[:2])
    if len(rows) != 1 or rows[0][14] != signed_hash or chain_hash(rows[0][13], chained_fields_from_row(rows[0])) != signed_hash:
        return seq, (f"the chain no longer passes through the checkpoint kept outside the database at #{seq} "
                     f"({where}): the ledger was rewritten")
    return None


def checkpoint_info(checkpoint) -> dict:
    return {"seq": checkpoint.seq, "hash": checkpoint.hash, "signed_at": format_instant(checkpoint.signed_at),
            "signature": checkpoint.signature}


# --- the state rows against a replay of the ledger ------------------------------------------

UNKNOWN = object()  # what the replay cannot know: the expiry of a confirmation recorded before expiries were
EXPIRY_EVIDENCE = "consent_expires_at"  # set by the services on confirmed and imported events ("never": no expiry)

# Replayed state of one consent: the fields below, then the sequence number of its last event.
STATE_FIELDS = ("status", "confirmed_at", "expires_at", "revoked_at", "source", "text_version")
_EVENT_FIELDS = ("seq", "kind", "contact_id", "topic_id", "channel", "occurred_at", "source", "text_version",
                 "recorded_expiry")
_CONSENT_FIELDS = ("id", "contact_id", "topic_id", "topic__slug", "channel", "status", "confirmed_at", "expires_at",
                   "revoked_at", "source", "text__version", "current_event__seq")


@dataclass
class StateReport:
    ok: bool
    consents: int
    events: int
    first_mismatch: dict | None = None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "consents": self.consents, "events": self.events, "first_mismatch": self.first_mismatch}

    def summary(self) -> str:
        if self.ok:
            return f"Consent state matches the ledger: {self.consents} consents replayed from {self.events} events."
        m = self.first_mismatch
        if "consent_id" not in m:
            return f"Consent state does NOT match the ledger: contact {m['contact_id']} (event #{m['last_seq']}): {m['problem']}"
        return (f"Consent state does NOT match the ledger: consent {m['consent_id']} ({m['topic']}/{m['channel']}, "
                f"last event #{m['last_seq']}): {m['problem']}")


def _expiry_recorded(value, occurred_at):
    if value is None:
        return UNKNOWN
    if value == "never":
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return UNKNOWN


def _apply(state: list | None, kind: str, occurred_at, source: str, text_version, recorded_expiry) -> list | None:
    """One event applied to a consent's replayed state, as consent.services writes the row."""
    if kind == EventKind.REQUESTED:
        return [ConsentStatus.PENDING, None, None, None, source, text_version, None, None]
    if kind == EventKind.IMPORTED:
        return [ConsentStatus.ACTIVE, occurred_at, _expiry_recorded(recorded_expiry, occurred_at), None, Source.IMPORT,
                text_version, None, None]
    if state is None:
        state = [None, None, None, None, source, text_version, None, None]
    if kind == EventKind.CONFIRMED:
        state[0], state[1], state[2], state[4] = (ConsentStatus.ACTIVE, occurred_at,
                                                  _expiry_recorded(recorded_expiry, occurred_at), source)
    elif kind == EventKind.REVOKED:
        state[0], state[3], state[4] = ConsentStatus.REVOKED, occurred_at, source
    elif kind == EventKind.EXPIRED:
        state[0] = ConsentStatus.EXPIRED
    return state


def _step(state: list | None, seq: int, kind: str, *event) -> list | None:
    """_apply, then the event's position: the last one, and the one that made the consent current, if it is."""
    state = _apply(state, kind, *event)
    state[6] = seq
    if kind in (EventKind.CONFIRMED, EventKind.IMPORTED):
        state[7] = seq
    elif kind in (EventKind.REVOKED, EventKind.EXPIRED):
        state[7] = None
    return state


def _difference(expected: list | None, row: tuple | None) -> str | None:
    """Why a consent row (a _CONSENT_FIELDS tuple) is not what the replay gives, or None."""
    if expected is None or expected[0] is None:
        if row is None:
            return None
        return "a consent row that no ledger event made (written behind the ledger's back)"
    if row is None:
        return f"the ledger says {expected[0]} but the consent row is missing"
    found = (row[5], row[6], row[7], row[8], row[9], row[10])
    for name, want, have in zip(STATE_FIELDS, expected, found, strict=False):  # expected has replay-only fields after
        if want is UNKNOWN:
            continue
        if want != have:
            return f"{name} is {_shown(have)} but the ledger gives {_shown(want)}"
    if expected[7] != row[11]:  # what the send-time gate trusts: the event that made the consent current
        return f"current_event is #{row[11]} but the ledger gives #{expected[7]}"
    return None


def _shown(value):
    return format_instant(value) if isinstance(value, datetime) else value


def _replay_events(queryset, *, upto_seq: int, chunk_size: int):
    queryset = queryset.exclude(topic_id=None).annotate(recorded_expiry=KT(f"evidence__{EXPIRY_EVIDENCE}"))
    return event_rows(after_seq=0, upto_seq=upto_seq, chunk_size=chunk_size, queryset=queryset, fields=_EVENT_FIELDS)


def verify_state(*, chunk_size: int = 10000) -> StateReport:
    """Replay the ledger and compare every consent row with what it gives; rows without events are mismatches.

    Streams the events and the rows in chunks, holding one small list per consent. A difference is
    checked again on that consent alone, so a change committed during the walk is not reported.
    """
    head_seq, _ = ledger_head()
    replayed: dict[tuple, list] = {}
    same = {}  # one copy of each repeated string (status, source, channel)
    events = 0
    for seq, kind, contact_id, topic_id, channel, occurred_at, source, text_version, expiry in _replay_events(
            ConsentEvent.objects.all(), upto_seq=head_seq, chunk_size=chunk_size):
        events += 1
        key = (contact_id, topic_id, same.setdefault(channel, channel))
        replayed[key] = _step(replayed.get(key), seq, kind, occurred_at, same.setdefault(source, source), text_version,
                              expiry)
    consents, candidates = 0, []
    last_id = 0
    while True:
        chunk = list(Consent.objects.filter(id__gt=last_id).order_by("id").values_list(*_CONSENT_FIELDS)[:chunk_size])
        for row in chunk:
            consents += 1
            state = replayed.pop((row[1], row[2], row[4]), None)
            if _difference(state, row) is not None:
                candidates.append((row[1], row[2], row[4]))
        if len(chunk) < chunk_size:
            break
        last_id = chunk[-1][0]
    candidates.extend(key for key, state in replayed.items() if state[0] is not None)  # events, but no row
    del replayed
    for key in candidates:
        mismatch = _confirmed_mismatch(*key, chunk_size=chunk_size)
        if mismatch is not None:
            return StateReport(ok=False, consents=consents, events=events, first_mismatch=mismatch)
    mismatch = _contact_level_mismatch()
    if mismatch is not None:
        return StateReport(ok=False, consents=consents, events=events, first_mismatch=mismatch)
    return StateReport(ok=True, consents=consents, events=events)


def _confirmed_mismatch(contact_id, topic_id, channel, *, chunk_size: int, attempts: int = 3) -> dict | None:
    """Replay one consent alone (row first, then its events); a difference that persists is reported."""
    for _ in range(attempts):
        row = (Consent.objects.filter(contact_id=contact_id, topic_id=topic_id, channel=channel)
               .values_list(*_CONSENT_FIELDS).first())
        state = None
        events = ConsentEvent.objects.filter(contact_id=contact_id, topic_id=topic_id, channel=channel)
        for seq, kind, _, _, _, occurred_at, source, text_version, expiry in _replay_events(
                events, upto_seq=ledger_head()[0], chunk_size=chunk_size):
            state = _step(state, seq, kind, occurred_at, source, text_version, expiry)
        problem = _difference(state, row)
        if problem is None:
            return None
    slug = row[3] if row else Topic.objects.filter(pk=topic_id).values_list("slug", flat=True).first()
    return {"consent_id": row[0] if row else None, "topic": slug, "channel": channel,
            "last_seq": state[6] if state else None, "problem": problem}


def _contact_level_mismatch(batch: int = 2000) -> dict | None:
    """Erased contacts must be erased and suppressed, suppressed numbers still on the suppression list."""
    events = (ConsentEvent.objects.filter(kind__in=(EventKind.ERASED, EventKind.SUPPRESSED)).order_by("seq")
              .values_list("seq", "kind", "contact_id", "subject"))
    last = 0
    while True:
        chunk = list(events.filter(seq__gt=last)[:batch])
        if not chunk:
            return None
        last = chunk[-1][0]
        listed = set(Suppression.objects.filter(phone_pseudonym__in={r[3] for r in chunk})
                     .values_list("phone_pseudonym", flat=True))
        erased = set(Contact.objects.filter(pk__in={r[2] for r in chunk if r[1] == EventKind.ERASED},
                                            erased_at__isnull=False, phone__isnull=True).values_list("pk", flat=True))
        for seq, kind, contact_id, subject in chunk:
            problem = None
            if kind == EventKind.ERASED and contact_id not in erased:
                problem = "the ledger records an erasure but the contact row still holds its number or is not erased"
            elif subject not in listed:
                problem = "the ledger suppressed this number but it is no longer on the suppression list"
            if problem:
                return {"contact_id": contact_id, "kind": kind, "last_seq": seq, "problem": problem}
