#!/usr/bin/env python
"""The hand-written statements of consent/rows.py against their ORM equivalents, on PostgreSQL.

    flock /tmp/bench.lock .venv/bin/python bench/consent_statements.py [--calls 300] [--rounds 7]
                                      [--database-url postgres://postgres@127.0.0.1:5432/bench_statements]

Each hand-written statement an inbound STOP or YES runs is timed in this process, the
hand-written form (consent.rows) and the ORM form alternately, round after round (the first form of each round
alternates too), `--calls` calls per form per round. Writes run in a transaction rolled back
at the end of each round. Prints the median CPU and wall microseconds per call of each form and
what the hand-written form saves per call; compare with the web CPU per request of
bench/inbound.py (the same statements run once per webhook) to see what each buys.

The statements it retired to the ORM for saving under 5 % of a webhook (the ledger's head lock
and append, the message INSERT, a STOP's consent and token UPDATEs, the suppression check) were
measured the same way before they went; their figures are written beside their ORM forms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class _Rollback(Exception):
    pass


def setup(url: str) -> None:
    import urllib.parse

    import psycopg

    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres", query=""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="config.settings.local", DJANGO_DEBUG="0",
                      LOG_LEVEL="WARNING", CELERY_TASK_ALWAYS_EAGER="0")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def cases(contacts: int):
    """(name, hand-written, ORM, writes) for every statement; each callable takes the call's index."""
    from django.db.models import Exists, OuterRef
    from django.utils import timezone

    from consent import rows, services
    from consent.hashing import GENESIS_HASH
    from consent.models import (
        ChainHead,
        Consent,
        ConsentEvent,
        ConsentStatus,
        Contact,
        Source,
        Suppression,
    )

    topic = services.topic_create(slug="bench", name="Bench", keywords=["BENCH"], consent_text="I agree.",
                                  confirmation_message="Reply YES.", help_message="Help.", consent_ttl_days=365)
    people = []
    for i in range(contacts):
        result = services.optin_request(phone=f"+1415555{i:04d}", topic=topic, channel="sms", source=Source.API)
        people.append((result.consent.contact, result.consent))
    ChainHead.objects.get_or_create(pk=1, defaults={"seq": 0, "hash": GENESIS_HASH})
    statuses = (ConsentStatus.PENDING, ConsentStatus.ACTIVE)
    event_template = ConsentEvent.objects.order_by("-seq").first()

    def person(i):
        return people[i % len(people)]

    def contact_sql(i):
        return rows.contact_with_suppression(person(i)[0].phone_pseudonym)

    def contact_orm(i):
        suppressed = Exists(Suppression.objects.filter(phone_pseudonym=OuterRef("phone_pseudonym")))
        return list(Contact.objects.annotate(suppressed_when_read=suppressed)
                    .filter(phone_pseudonym=person(i)[0].phone_pseudonym)[:1])

    def locked_sql(i):
        return rows.consents_locked(contact_id=person(i)[0].pk, channel="sms", statuses=statuses)

    def locked_orm(i):
        return list(Consent.objects.select_for_update(of=("self",)).select_related("topic", "text")
                    .filter(contact_id=person(i)[0].pk, channel="sms", status__in=statuses).order_by("id"))

    def confirmed(i):
        consent = person(i)[1]
        now = timezone.now()
        consent.status, consent.confirmed_at, consent.source = ConsentStatus.ACTIVE, now, Source.SMS_KEYWORD
        consent.expires_at = now
        consent.current_event_id = event_template.pk
        return [consent]

    def update_yes_sql(i):
        rows.update(confirmed(i), ["status", "confirmed_at", "expires_at", "source", "updated_at"], each=["current_event"])

    def update_yes_orm(i):
        consents = confirmed(i)
        for consent in consents:
            consent.updated_at = timezone.now()
        Consent.objects.bulk_update(consents, ["status", "confirmed_at", "expires_at", "source", "updated_at",
                                               "current_event"])

    def update_yes_orm_per_row(i):
        now = timezone.now()
        for consent in confirmed(i):
            Consent.objects.filter(pk=consent.pk).update(
                status=consent.status, confirmed_at=consent.confirmed_at, expires_at=consent.expires_at,
                source=consent.source, updated_at=now, current_event=consent.current_event_id)

    from consent.intake.records import record_fields, record_of
    from consent.models import InboundReceipt
    from consent.webhooks.parsers import InboundMessage

    def receipt(i):
        message = InboundMessage(channel="sms", provider_message_id=f"SMbench{time.perf_counter_ns()}{i}",
                                 sender=person(i)[0].phone, text="STOP")
        return record_fields(record_of(message, provider="twilio", received_at=timezone.now()))

    def receipt_sql(i):
        return rows.receipt_insert(InboundReceipt, receipt(i)) is not None

    def receipt_orm(i):
        # The ORM's nearest one-statement form, which cannot even tell whether the row was new.
        return InboundReceipt.objects.bulk_create([InboundReceipt(**receipt(i))], ignore_conflicts=True)

    return [
        ("receipt_insert (intake)", receipt_sql, receipt_orm, True),
        ("contact_with_suppression", contact_sql, contact_orm, False),
        ("consents_locked", locked_sql, locked_orm, True),
        ("update (YES: each row its event)", update_yes_sql, update_yes_orm, True),
        ("update (YES), ORM: update() per row", update_yes_sql, update_yes_orm_per_row, True),
    ]


def timed(function, calls: int) -> tuple[float, float]:
    """CPU and wall microseconds per call over `calls` calls, in one transaction rolled back."""
    from django.db import transaction

    cpu, wall = time.process_time(), time.perf_counter()
    try:
        with transaction.atomic():
            for i in range(calls):
                function(i)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            raise _Rollback
    except _Rollback:
        pass
    return cpu / calls * 1e6, wall / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_statements")
    parser.add_argument("--output", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    setup(args.database_url)
    results = {}
    for name, sql, orm, _ in cases(args.contacts):
        for function in (sql, orm):  # warm: statements built, connection open
            timed(function, 20)
        figures = {"sql": [], "orm": []}
        for round_ in range(args.rounds):
            order = (("sql", sql), ("orm", orm)) if round_ % 2 == 0 else (("orm", orm), ("sql", sql))
            for form, function in order:
                figures[form].append(timed(function, args.calls))
        row = {}
        for form, runs in figures.items():
            row[f"{form}_cpu_us"] = round(statistics.median(r[0] for r in runs), 1)
            row[f"{form}_wall_us"] = round(statistics.median(r[1] for r in runs), 1)
            row[f"{form}_cpu_us_runs"] = [round(r[0], 1) for r in runs]
        row["saved_cpu_us"] = round(row["orm_cpu_us"] - row["sql_cpu_us"], 1)
        row["saved_wall_us"] = round(row["orm_wall_us"] - row["sql_wall_us"], 1)
        results[name] = row
        print(f"{name:34} sql {row['sql_cpu_us']:7.1f} µs CPU ({row['sql_wall_us']:7.1f} wall)   "
              f"orm {row['orm_cpu_us']:7.1f} µs CPU ({row['orm_wall_us']:7.1f} wall)   "
              f"saves {row['saved_cpu_us']:6.1f} µs CPU, {row['saved_wall_us']:6.1f} µs wall", flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
