"""Contacts import from a CSV file: contacts with their attributes, and legacy proofs of consent with
their evidence (through `services.consents_import`, the same path as `POST consents/import/`).

One header row. Columns: `phone` (required); `topic`, `channel` (default `sms`), `confirmed_at` and
`source_detail` for a proof of consent; `evidence_<name>` columns make the proof's evidence (at least
one is needed with a topic); every other column is a contact attribute (empty cells set nothing).

A preview runs the whole import inside a transaction that is rolled back, so what it shows is what
the import will do. Rows with errors are reported by line and never imported; the others are. An import
never reactivates a revoked consent (a newer local decision wins, as in `consents_import`) and never
touches an erased or suppressed number (no attributes, no consent).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from . import services
from .attributes import ATTRIBUTE_NAME, attribute_errors
from .ledger import pseudonym_for
from .models import Channel, Topic
from .selectors import contact_by_pseudonym, contact_is_messageable

MAX_ROWS = 10_000
MAX_BYTES = 5 * 1024 * 1024
MAX_CELL_CHARS = 2000
EVIDENCE_PREFIX = "evidence_"
CONSENT_COLUMNS = ("topic", "channel", "confirmed_at", "source_detail")
RESERVED = ("phone", *CONSENT_COLUMNS)


class ImportFileError(ValueError):
    """The file as a whole cannot be read (not CSV, no phone column, too large)."""


@dataclass
class RowPlan:
    line: int
    phone: str = ""
    attributes: dict = field(default_factory=dict)
    record: services.ImportRecord | None = None
    errors: dict[str, str] = field(default_factory=dict)
    outcome: str = ""


def _text(data: bytes | str) -> str:
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise ImportFileError(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImportFileError("The file is not UTF-8 text (save it as “CSV UTF-8”).") from None
    if len(data) > MAX_BYTES:
        raise ImportFileError(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
    return data.lstrip("\ufeff")


def read_rows(data: bytes | str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the (line, row) pairs of a CSV file, or ImportFileError."""
    text = _text(data)
    if "\x00" in text:
        raise ImportFileError("The file contains NUL characters: it is not a CSV file.")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise ImportFileError("The file is empty.") from None
    except csv.Error as exc:
        raise ImportFileError(f"Not a readable CSV file: {exc}.") from None
    if "phone" not in header:
        raise ImportFileError("The first row must name the columns, one of them `phone`.")
    if len(set(header)) != len(header):
        raise ImportFileError("Two columns have the same name.")
    bad = [name for name in header if name not in RESERVED and not name.startswith(EVIDENCE_PREFIX)
           and not ATTRIBUTE_NAME.match(name)]
    if bad:
        raise ImportFileError(f"Column names must be letters, digits and underscores: {', '.join(bad[:5])}.")
    rows = []
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(rows) >= MAX_ROWS:
                raise ImportFileError(f"At most {MAX_ROWS} rows per file.")
            rows.append((reader.line_num, {name: (values[i].strip() if i < len(values) else "")
                                           for i, name in enumerate(header)}))
    except csv.Error as exc:
        raise ImportFileError(f"Line {reader.line_num}: {exc}.") from None
    return header, rows


def _instant(value: str) -> datetime | None:
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        parsed = datetime(day.year, day.month, day.day) if day else None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, ZoneInfo(settings.TIME_ZONE))
    return parsed


def plan_row(line: int, row: dict[str, str], topics: dict[str, Topic], now: datetime) -> RowPlan:
    """What one row asks for, with its errors by column (pure apart from the topics given)."""
    plan = RowPlan(line=line)
    for name, value in row.items():
        if len(value) > MAX_CELL_CHARS:
            plan.errors[name] = f"At most {MAX_CELL_CHARS} characters."
    try:
        plan.phone = services.phone_normalise(row.get("phone", ""))
    except ValidationError as exc:
        plan.errors["phone"] = " ".join(exc.message_dict.get("phone", exc.messages))
    plan.attributes = {name: value for name, value in row.items()
                       if name not in RESERVED and not name.startswith(EVIDENCE_PREFIX) and value}
    for message in attribute_errors(plan.attributes, removals=False):
        plan.errors.setdefault("attributes", message)
    evidence = {name[len(EVIDENCE_PREFIX):]: value for name, value in row.items()
                if name.startswith(EVIDENCE_PREFIX) and value}
    slug = row.get("topic", "")
    if not slug:
        if row.get("confirmed_at") or evidence:
            plan.errors["topic"] = "A proof of consent (confirmed_at, evidence) needs its topic."
        return plan
    topic = topics.get(slug)
    channel = row.get("channel") or Channel.SMS
    confirmed_at = _instant(row.get("confirmed_at", ""))
    if topic is None:
        plan.errors["topic"] = f"No topic {slug!r}."
    if channel not in Channel.values:
        plan.errors["channel"] = f"One of {', '.join(Channel.values)}."
    if confirmed_at is None:
        plan.errors["confirmed_at"] = "When the person confirmed, e.g. 2024-03-01T10:00:00Z."
    elif confirmed_at > now:
        plan.errors["confirmed_at"] = "A consent cannot be confirmed in the future."
    if not evidence:
        plan.errors["evidence"] = "A proof of consent needs its evidence (evidence_ip, evidence_page_url, …)."
    if not plan.errors:
        plan.record = services.ImportRecord(phone=plan.phone, topic=topic, channel=channel, confirmed_at=confirmed_at,
                                            evidence=evidence, source_detail=row.get("source_detail", "")[:500])
    return plan


class _Preview(Exception):
    """Raised to roll the preview's transaction back."""


def contacts_import(*, data: bytes | str, actor: str, commit: bool, now: datetime | None = None) -> dict:
    """Import (or, with commit=False, preview) a contacts CSV; the summary, with each row's outcome."""
    now = now or timezone.now()
    _, rows = read_rows(data)
    topics = {t.slug: t for t in Topic.objects.select_related("current_text").filter(current_text__isnull=False)}
    plans = [plan_row(line, row, topics, now) for line, row in rows]
    summary: dict = {}
    try:
        with transaction.atomic():
            summary = _apply(plans, actor=actor, now=now)
            if not commit:
                raise _Preview
    except _Preview:
        pass
    summary["committed"] = commit
    return summary


def _apply(plans: list[RowPlan], *, actor: str, now: datetime) -> dict:
    created = updated = 0
    records: list[tuple[RowPlan, services.ImportRecord]] = []
    for plan in plans:
        if plan.errors:
            plan.outcome = "error"
            continue
        contact = contact_by_pseudonym(pseudonym_for(plan.phone))
        if contact is not None and not contact_is_messageable(contact):
            plan.outcome = "skipped: number erased or suppressed"
            continue
        try:
            with transaction.atomic():
                before = dict(contact.attributes) if contact else None
                contact = services.contact_get_or_create(phone=plan.phone, attributes=plan.attributes or None)
        except ValidationError as exc:
            plan.errors.update({k: " ".join(v) for k, v in exc.message_dict.items()})
            plan.outcome = "error"
            continue
        if before is None:
            created += 1
            plan.outcome = "contact created"
        elif before != contact.attributes:
            updated += 1
            plan.outcome = "attributes updated"
        else:
            plan.outcome = "contact unchanged"
        if plan.record is not None:
            records.append((plan, plan.record))
    consents = {"imported": 0, "active": 0, "expired": 0, "skipped": 0, "batch": None}
    if records:
        result = services.consents_import(records=[r for _, r in records], actor=actor, now=now)
        skipped = {item["index"]: item["reason"] for item in result["skipped"]}
        for index, (plan, record) in enumerate(records):
            if index in skipped:
                plan.outcome += f"; consent not imported: {skipped[index]}"
            else:
                plan.outcome += f"; consent {record.topic.slug}/{record.channel} imported"
        consents.update(imported=result["imported"], active=result["active"], expired=result["expired"],
                        skipped=len(result["skipped"]), batch=result["batch"])
    errors = [{"line": p.line, "errors": p.errors} for p in plans if p.errors]
    return {
        "rows": len(plans), "errors": errors, "contacts_created": created, "contacts_updated": updated,
        "skipped": sum(1 for p in plans if p.outcome.startswith("skipped")), "consents": consents,
        "results": [{"line": p.line, "phone": p.phone, "outcome": p.outcome} for p in plans],
    }
