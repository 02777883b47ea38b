"""The consent rows are what replaying the ledger gives: status, times the replay knows, source, text."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from consent import services
from consent.erasure import contact_erase
from consent.models import ConsentEvent, ConsentStatus, EventKind, Source, Suppression
from consent.selectors import contact_get_by_phone
from consent.verification import verify_state

from .conftest import PHONES, raw_sql


def test_the_fixture_history_replays_to_its_rows(ledger):
    report = verify_state()
    assert report.ok, report.summary()
    assert report.consents == 3 and report.events == ConsentEvent.objects.count()


@pytest.mark.parametrize("column,value", [
    ("status", "active"), ("revoked_at", None), ("confirmed_at", "2020-01-01T00:00:00Z"),
    ("expires_at", "2099-01-01T00:00:00Z"), ("source", "admin"),
])
def test_a_revoked_row_changed_behind_the_ledger_is_named(ledger, column, value):
    consent = contact_get_by_phone(PHONES[1]).consents.get()
    raw_sql(f"UPDATE consent_consent SET {column} = %s WHERE id = %s", [value, consent.pk])
    report = verify_state()
    assert not report.ok
    mismatch = report.first_mismatch
    last = ConsentEvent.objects.filter(contact=consent.contact).order_by("-seq").first()
    assert (mismatch["consent_id"], mismatch["topic"], mismatch["channel"], mismatch["last_seq"]) == (
        consent.pk, "promo", "sms", last.seq)
    assert column in mismatch["problem"]


def test_an_extended_expiry_is_caught(ledger):
    consent = contact_get_by_phone(PHONES[0]).consents.get()
    assert consent.status == ConsentStatus.ACTIVE
    raw_sql("UPDATE consent_consent SET expires_at = %s WHERE id = %s",
            [consent.expires_at + timedelta(days=3650), consent.pk])
    report = verify_state()
    assert not report.ok and "expires_at" in report.first_mismatch["problem"]


def test_a_topic_lifetime_changed_later_does_not_break_replay(ledger):
    services.topic_update(topic=ledger, consent_ttl_days=30)  # existing consents keep the expiry they got
    assert verify_state().ok


def test_a_consent_row_deleted_is_named(ledger):
    consent = contact_get_by_phone(PHONES[2]).consents.get()  # pending
    raw_sql("DELETE FROM consent_confirmationtoken WHERE consent_id = %s", [consent.pk])
    raw_sql("DELETE FROM consent_consent WHERE id = %s", [consent.pk])
    report = verify_state()
    assert not report.ok and report.first_mismatch["consent_id"] is None
    assert "missing" in report.first_mismatch["problem"]


def test_imports_expiry_and_erasure_replay(topic, run_on_commit):
    now = timezone.now()
    records = [services.ImportRecord(phone=PHONES[0], topic=topic, channel="sms", confirmed_at=now - timedelta(days=10),
                                     evidence={"form": "legacy"}),
               services.ImportRecord(phone=PHONES[1], topic=topic, channel="sms", confirmed_at=now - timedelta(days=900),
                                     evidence={"form": "legacy"})]
    summary = services.consents_import(records=records, actor="user:admin")
    assert summary["active"] == 1 and summary["expired"] == 1
    with run_on_commit():
        services.optin_request(phone=PHONES[2], topic=topic, channel="whatsapp", source=Source.API)
    with time_machine.travel(now + timedelta(days=400)):
        assert services.consents_expire_due() == 2  # the import's lifetime and the pending window
    contact_erase(contact=contact_get_by_phone(PHONES[0]), actor="user:admin", reason="request")
    report = verify_state()
    assert report.ok, report.summary()


def test_an_erasure_undone_behind_the_ledger_is_caught(ledger):
    contact = contact_get_by_phone(PHONES[0])
    contact_erase(contact=contact, actor="user:admin")
    assert verify_state().ok
    raw_sql("UPDATE consent_contact SET phone = %s, erased_at = NULL WHERE id = %s", [PHONES[0], contact.pk])
    report = verify_state()
    assert not report.ok and report.first_mismatch["kind"] == EventKind.ERASED
    assert "erasure" in report.summary()


def test_a_suppression_removed_behind_the_ledger_is_caught(ledger):
    contact = contact_get_by_phone(PHONES[2])
    services.contact_suppress(contact=contact, reason="invalid_number", source=Source.PROVIDER)
    assert verify_state().ok
    Suppression.objects.filter(phone_pseudonym=contact.phone_pseudonym).delete()
    report = verify_state()
    assert not report.ok and "suppression list" in report.first_mismatch["problem"]


def test_a_row_changed_by_a_commit_during_the_walk_is_not_reported(ledger, monkeypatch):
    """The replay reads the events up to the head first; a consent changed after that is checked again alone."""
    from consent import verification

    contact = contact_get_by_phone(PHONES[0])
    real = verification._replay_events
    calls = []

    def replay_then_revoke(queryset, **kwargs):
        yield from real(queryset, **kwargs)
        if not calls:  # right after the full walk: a STOP commits
            calls.append(1)
            services.consent_revoke(contact=contact, channel="sms", source=Source.SMS_KEYWORD)

    monkeypatch.setattr(verification, "_replay_events", replay_then_revoke)
    assert verify_state().ok
    assert calls


def test_state_in_chunks(ledger):
    assert verify_state(chunk_size=1).ok

