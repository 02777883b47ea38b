"""Ledger exports (CSV and JSON Lines), streamed in constant memory, and their signed manifests.

Both formats carry every chained field exactly as the hash saw it, so anyone can recompute each
event's hash without the database (see docs/audit.md and tools/verify_export.py). CSV is made safe
for spreadsheets by a reversible rule: a cell that starts with = + - @ TAB CR or ' gets one
leading ' added; a verifier removes one leading ' from any cell that starts with it.
"""

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from json.encoder import encode_basestring

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from consent.hashing import GENESIS_HASH, format_instant
from consent.ledger import ROW_FIELDS, chained_fields_from_row, ledger_head
from consent.models import Channel, ConsentEvent, LedgerCheckpoint, StaffAction, Topic, TopicText
from consent.verification import ledger_rows

from . import signing
from .actions import action_as_dict, actions_head
from .checkpoints import LedgerNotIntact, checkpoint_as_dict, checkpoint_create
from .trust import checkpoint_signature_valid, latest_valid_checkpoint

EXPORT_FORMAT_VERSION = "consent-ledger-export/1"
FORMATS = ("csv", "jsonl")
COLUMNS = ("sequence", "event_id", "occurred_at", "recorded_at", "kind", "phone", "subject", "topic", "channel",
           "source", "actor", "text_version", "text_sha256", "evidence", "prev_hash", "hash")
ERASED = "[erased]"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "'")
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


# --- filters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFilters:
    since: datetime | None = None
    until: datetime | None = None
    topic: str | None = None
    channel: str | None = None
    kind: str | None = None
    contact_id: int | None = None

    def as_dict(self) -> dict:
        return {
            "since": format_instant(self.since) if self.since else None,
            "until": format_instant(self.until) if self.until else None,
            "topic": self.topic,
            "channel": self.channel,
        }

    def conditions(self) -> list[tuple[str, str, object]]:
        """The filters as (column, operator, value) for verification.ledger_rows()."""
        found = []
        if self.since:
            found.append(("occurred_at", ">=", self.since))
        if self.until:
            found.append(("occurred_at", "<", self.until))
        for column, value in (("topic_slug", self.topic), ("channel", self.channel), ("kind", self.kind)):
            if value:
                found.append((column, "=", value))
        if self.contact_id is not None:
            found.append(("contact_id", "=", self.contact_id))
        return found

    def apply(self, queryset):
        if self.since:
            queryset = queryset.filter(occurred_at__gte=self.since)
        if self.until:
            queryset = queryset.filter(occurred_at__lt=self.until)
        if self.topic:
            queryset = queryset.filter(topic_slug=self.topic)
        if self.channel:
            queryset = queryset.filter(channel=self.channel)
        if self.kind:
            queryset = queryset.filter(kind=self.kind)
        if self.contact_id is not None:
            queryset = queryset.filter(contact_id=self.contact_id)
        return queryset


def parse_instant(value: str, field_name: str) -> datetime:
    """An ISO 8601 date or date-time (naive means UTC), or a ValidationError naming the field."""
    value = (value or "").strip()
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            parsed = datetime.combine(day, time.min) if day is not None else None
    except ValueError:
        parsed = None
    if parsed is None and " " in value and "T" in value:
        # An unencoded "+" in a query string arrives as a space: "…T00:00:00 02:00".
        return parse_instant(value.replace(" ", "+"), field_name)
    if parsed is None:
        raise ValidationError({field_name: "Give an ISO 8601 date or date-time, such as 2026-01-31T00:00:00Z."})
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def filters_from_params(params, *, allowed=("since", "until", "topic", "channel")) -> ExportFilters:
    """Validated filters from query parameters or command options (a ValidationError on bad input)."""
    values, errors = {}, {}
    for name in ("since", "until"):
        if name in allowed and params.get(name):
            try:
                values[name] = parse_instant(params[name], name)
            except ValidationError as exc:
                errors.update(exc.message_dict)
    if "topic" in allowed and params.get("topic"):
        if not SLUG.fullmatch(params["topic"]) or not Topic.objects.filter(slug=params["topic"]).exists():
            errors["topic"] = f"Unknown topic {params['topic'][:64]!r}."
        values["topic"] = params["topic"]
    if "channel" in allowed and params.get("channel"):
        if params["channel"] not in Channel.values:
            errors["channel"] = f"One of {', '.join(Channel.values)}."
        values["channel"] = params["channel"]
    if not errors and values.get("since") and values.get("until") and values["since"] >= values["until"]:
        errors["until"] = "Must be later than since."
    if errors:
        raise ValidationError(errors)
    return ExportFilters(**values)


# --- rows -----------------------------------------------------------------------------------


def export_record(row: tuple) -> dict:
    """A ROW_FIELDS tuple plus the phone (None once erased) as the documented record (JSON types)."""
    chained = chained_fields_from_row(row)
    return {
        "sequence": chained["seq"],
        "event_id": chained["uuid"],
        "occurred_at": chained["occurred_at"],
        "recorded_at": chained["recorded_at"],
        "kind": chained["kind"],
        "phone": row[15] or ERASED,
        **{name: chained[name] for name in ("subject", "topic", "channel", "source", "actor", "text_version",
                                             "text_sha256", "evidence")},
        "prev_hash": row[13],
        "hash": row[14],
    }


def event_record(event: ConsentEvent) -> dict:
    """A model instance (with contact loaded) as the documented record."""
    return export_record(tuple(getattr(event, f) for f in ROW_FIELDS) + (event.contact.phone,))


def neutralise_cell(value: str) -> str:
    """Defuse spreadsheet formulas, reversibly: one leading ' before a risky first character (or a ')."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _csv_writer_for(buffer):
    """Write one ledger_rows() tuple (with phone) as an RFC 4180 record in COLUMNS order, text cells defused.

    Every cell is quoted (inner quotes doubled). Sequence, event id, times and text version are
    formatted by the database or by us (digits and hex only), so only the other cells can start
    with a risky character. Written by hand: the csv module's writer is the slowest step here.
    """
    risky = frozenset(FORMULA_PREFIXES)
    write = buffer.write

    def line(row):
        kind, phone, subject, topic, channel, source, actor, sha, evidence, prev, hash_ = [
            ("'" + v if v[:1] in risky else v).replace('"', '""')
            for v in (row[4], row[15] or ERASED, row[5], row[6], row[7], row[8], row[9], row[11], row[12], row[13],
                      row[14])
        ]
        version = "" if row[10] is None else row[10]
        write(f'"{row[0]}","{row[1]}","{row[2]}","{row[3]}","{kind}","{phone}","{subject}","{topic}","{channel}",'
              f'"{source}","{actor}","{version}","{sha}","{evidence}","{prev}","{hash_}"\r\n')

    return line


def _jsonl_writer_for(buffer):
    """Write one ledger_rows() tuple (with phone) as a JSON object in COLUMNS order; evidence is spliced in as is."""
    s = encode_basestring  # JSON string literal, C-accelerated

    def line(row):
        version = "null" if row[10] is None else str(int(row[10]))
        buffer.write(
            f'{{"sequence":{int(row[0])},"event_id":{s(row[1])},"occurred_at":{s(row[2])},"recorded_at":{s(row[3])},'
            f'"kind":{s(row[4])},"phone":{s(row[15] or ERASED)},"subject":{s(row[5])},"topic":{s(row[6])},'
            f'"channel":{s(row[7])},"source":{s(row[8])},"actor":{s(row[9])},"text_version":{version},'
            f'"text_sha256":{s(row[11])},"evidence":{row[12]},"prev_hash":{s(row[13])},"hash":{s(row[14])}}}\n'
        )

    return line


# --- streams --------------------------------------------------------------------------------


@dataclass
class ExportStream:
    """Iterates the export as bytes chunks and keeps count, first/last sequence and SHA-256 as it goes."""

    fmt: str
    filters: ExportFilters
    upto_seq: int
    chunk_size: int = 5000
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    size: int = 0
    digest: "hashlib._Hash" = field(default_factory=hashlib.sha256)

    def __post_init__(self):
        if self.fmt not in FORMATS:
            raise ValidationError({"format": f"One of {', '.join(FORMATS)}."})

    def __iter__(self):
        rows = ledger_rows(after_seq=0, upto_seq=self.upto_seq, conditions=self.filters.conditions(), with_phone=True,
                           chunk_size=self.chunk_size)
        buffer = io.StringIO()
        if self.fmt == "csv":
            buffer.write("\ufeff")  # a BOM, so that spreadsheets read the file as UTF-8
            csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerow(COLUMNS)
            line = _csv_writer_for(buffer)
        else:
            line = _jsonl_writer_for(buffer)
        pending = 0
        for row in rows:
            line(row)
            if self.first_seq is None:
                self.first_seq = row[0]
            self.last_seq = row[0]
            self.count += 1
            pending += 1
            if pending >= 2000:
                yield self._take(buffer)
                pending = 0
        tail = self._take(buffer)
        if tail:
            yield tail

    def _take(self, buffer: io.StringIO) -> bytes:
        data = buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        self.digest.update(data)
        self.size += len(data)
        return data


# --- files and manifests ------------------------------------------------------------------------


def texts_for_manifest() -> list[dict]:
    """Every topic text version with its hash, so that each event's text_sha256 resolves to exact words."""
    return [
        {"topic": slug, "version": version, "consent_text": consent, "confirmation_message": confirmation,
         "help_message": help_text, "welcome_message": welcome, "sha256": sha, "created_at": format_instant(created)}
        for slug, version, consent, confirmation, help_text, welcome, sha, created in TopicText.objects.order_by(
            "topic__slug", "version").values_list("topic__slug", "version", "consent_text", "confirmation_message",
                                                  "help_message", "welcome_message", "sha256", "created_at")
    ]


@dataclass
class ExportResult:
    path: str
    manifest_path: str
    manifest: dict
    ledger_problem: str = ""


INCLUDES = ("actions",)


def manifest_build(*, stream: "ExportStream", file_name: str, fmt: str, filters: ExportFilters, head: tuple[int, str],
                   checkpoint, verification: dict | None) -> dict:
    """The manifest of an export that `stream` has been read through, signed where the signing key is held."""
    manifest = {
        "format": EXPORT_FORMAT_VERSION,
        "file": file_name,
        "file_format": fmt,
        "columns": list(COLUMNS),
        "sha256": stream.digest.hexdigest(),
        "bytes": stream.size,
        "filters": filters.as_dict(),
        "count": stream.count,
        "first_seq": stream.first_seq,
        "last_seq": stream.last_seq,
        "chain_head": {"seq": head[0], "hash": head[1]},
        "checkpoint": checkpoint_as_dict(checkpoint) if checkpoint else None,
        "ledger_verification": verification or {"ok": True},
        "texts": texts_for_manifest(),
        "generated_at": format_instant(timezone.now()),
        "algorithm": signing.ALGORITHM,
        "key_id": signing.key_id(),
        "public_key": signing.public_key_pem(),
    }
    # Only the signer holds the private key: elsewhere the manifest goes out unsigned and says so; its
    # checkpoint (signed by the signer) still binds the chain head it names.
    manifest["signature"] = signing.sign(manifest) if signing.has_private_key() else None
    return manifest


def http_export_bound(upto: str | None) -> tuple[int, str, object]:
    """(seq, hash, checkpoint or None) an HTTP export and its manifest stop at: `upto` if given, else the latest
    valid signed checkpoint (so the manifest's chain head is signed), else the head. A ValidationError on bad input."""
    head_seq, head_hash = ledger_head()
    if upto not in (None, ""):
        try:
            seq = int(upto)
        except (TypeError, ValueError):
            raise ValidationError({"upto": "A ledger sequence number."}) from None
        if seq < 0 or seq > head_seq:
            raise ValidationError({"upto": f"Between 0 and the head, {head_seq}."})
    else:
        found = latest_valid_checkpoint()
        seq = found[0].seq if found and found[1] else head_seq
    if seq == head_seq:
        digest = head_hash
    else:
        digest = ConsentEvent.objects.filter(seq=seq).values_list("hash", flat=True).first() or GENESIS_HASH
    checkpoint = next((c for c in LedgerCheckpoint.objects.filter(seq=seq, hash=digest).order_by("-signed_at")[:5]
                       if checkpoint_signature_valid(c)), None)
    return seq, digest, checkpoint


def actions_to_file(path: str, *, upto_seq: int) -> dict:
    """Write the staff action log up to `upto_seq` as JSON Lines; what the manifest says of it."""
    digest, size, count, first, last = hashlib.sha256(), 0, 0, None, None
    with open(f"{path}.partial", "wb") as handle:
        queryset = StaffAction.objects.filter(seq__lte=upto_seq).order_by("seq")
        for record in queryset.iterator(chunk_size=2000):
            line = (json.dumps(action_as_dict(record), ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
            handle.write(line)
            digest.update(line)
            size += len(line)
            count += 1
            first = record.seq if first is None else first
            last = record.seq
    os.replace(f"{path}.partial", path)
    return {"file": os.path.basename(path), "file_format": "jsonl", "sha256": digest.hexdigest(), "bytes": size,
            "count": count, "first_seq": first, "last_seq": last}


def export_to_file(*, path: str, fmt: str, filters: ExportFilters, chunk_size: int = 5000,
                   include: tuple[str, ...] = ()) -> ExportResult:
    """Write the export and PATH.manifest.json (signed), bounded by a freshly verified, signed checkpoint.

    If the ledger does not verify, the file is still written (it is evidence), but the manifest
    carries no checkpoint and records the verification failure. With include=("actions",) the staff
    action log goes to PATH.actions.jsonl, up to the action head the checkpoint signed, and the
    manifest describes that file too.
    """
    ledger_problem, verification = "", None
    try:
        checkpoint = checkpoint_create()
    except LedgerNotIntact as exc:
        checkpoint, ledger_problem, verification = None, exc.report.summary(), exc.report.as_dict()
    if checkpoint is not None:
        head_seq, head_hash = checkpoint.seq, checkpoint.hash
    else:
        head_seq, head_hash = ledger_head() if ledger_problem else (0, GENESIS_HASH)
    stream = ExportStream(fmt=fmt, filters=filters, upto_seq=head_seq, chunk_size=chunk_size)
    partial = f"{path}.partial"
    with open(partial, "wb") as handle:
        handle.writelines(stream)
    os.replace(partial, path)
    actions = None
    if "actions" in include:
        if checkpoint is not None and checkpoint.actions_seq is not None:
            action_head = (checkpoint.actions_seq, checkpoint.actions_hash)
        else:
            action_head = actions_head()
        actions = {**actions_to_file(f"{path}.actions.jsonl", upto_seq=action_head[0]),
                   "head": {"seq": action_head[0], "hash": action_head[1]}}
    manifest = manifest_build(stream=stream, file_name=os.path.basename(path), fmt=fmt, filters=filters,
                              head=(head_seq, head_hash), checkpoint=checkpoint, verification=verification)
    if actions is not None:
        manifest.pop("signature")
        manifest["actions"] = actions
        manifest["signature"] = signing.sign(manifest)
    manifest_path = f"{path}.manifest.json"
    with open(f"{manifest_path}.partial", "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, ensure_ascii=False, indent=2)
        handle.write("\n")
    os.replace(f"{manifest_path}.partial", manifest_path)
    return ExportResult(path=path, manifest_path=manifest_path, manifest=manifest, ledger_problem=ledger_problem)
