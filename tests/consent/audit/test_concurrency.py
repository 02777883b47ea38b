"""Verification and checkpoints while other connections keep appending: never a false alarm."""

import threading

import pytest
from django.db import connections

from consent import services
from consent.audit.checkpoints import checkpoint_create
from consent.models import ConsentEvent, Source
from consent.verification import verify_ledger

pytestmark = pytest.mark.django_db(transaction=True)


def _appender(topic, go, stop, errors):
    try:
        go.wait(timeout=30)
        i = 0
        while not stop.is_set() and i < 60:
            services.optin_request(phone=f"+1415557{i:04d}", topic=topic, channel="sms", source=Source.API)
            i += 1
    except Exception as exc:  # noqa: BLE001 - reported to the main thread
        errors.append(exc)
    finally:
        connections.close_all()


def test_verifying_during_appends_reports_no_damage(topic, signing_key):
    go, stop, errors, reports = threading.Event(), threading.Event(), [], []
    writer = threading.Thread(target=_appender, args=(topic, go, stop, errors))
    writer.start()
    try:
        reports.append(verify_ledger())
        go.set()
        while writer.is_alive() and len(reports) < 1000:
            reports.append(verify_ledger(resume=len(reports) % 2 == 1))
            if len(reports) % 5 == 0:
                checkpoint_create()
    finally:
        go.set()
        stop.set()
        writer.join(timeout=120)
    assert not errors, errors
    reports.append(verify_ledger())
    bad = [r for r in reports if not r.ok]
    assert not bad, bad[0].summary()
    assert len({r.head_seq for r in reports}) > 1  # the head moved while verifying
    assert reports[-1].events == ConsentEvent.objects.count() > 0
