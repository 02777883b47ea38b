"""What someone who can write the database directly (triggers dropped) tries, and what verification says.

Each attack is made the way the security review made it: the append-only triggers lifted, rows
changed with SQL, hashes recomputed with the public hash function.
"""

import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from consent import services
from consent.audit.checkpoints import LedgerNotIntact, checkpoint_create
from consent.hashing import chain_hash
from consent.ledger import ROW_FIELDS, chained_fields_from_row
from consent.models import ConsentEvent, ConsentStatus, EventKind, LedgerCheckpoint, Source
from consent.selectors import contact_get_by_phone
from consent.verification import verify_ledger

from .conftest import PHONES, raw_sql, triggers_lifted

pytestmark = pytest.mark.django_db(transaction=False)


def _verify_command():
    """(exit code, stdout, stderr) of verify_consent_log."""
    import io

    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_consent_log", stdout=out, stderr=err)
    except SystemExit as exc:
        return exc.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def _remove_and_rechain(seq: int) -> None:
    """Delete event `seq`, renumber the later ones and re-hash them all, and move the head: a consistent chain."""
    raw_sql("DELETE FROM consent_consentevent WHERE seq = %s", [seq])
    prev = ConsentEvent.objects.filter(seq=seq - 1).values_list("hash", flat=True).first() or "0" * 64
    for row in ConsentEvent.objects.filter(seq__gt=seq).order_by("seq").values_list(*ROW_FIELDS):
        fields = chained_fields_from_row(row)
        fields["seq"] = row[0] - 1
        digest = chain_hash(prev, fields)
        raw_sql("UPDATE consent_consentevent SET seq = %s, prev_hash = %s, hash = %s WHERE seq = %s",
                [row[0] - 1, prev, digest, row[0]])
        prev = digest
    head = ConsentEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    raw_sql("UPDATE consent_chainhead SET seq = %s, hash = %s WHERE id = 1", [head, prev])


def test_a_stop_removed_and_the_chain_rehashed_is_caught_and_not_signed(ledger, run_on_commit):
    # More history after the STOP, so the rewrite has something to renumber.
    with run_on_commit():
        services.optin_request(phone="+14155550199", topic=ledger, channel="sms", source=Source.API,
                               evidence={"ip": "203.0.113.10"})
    checkpoint_create()  # the signer's routine checkpoint, after the STOP
    stop = ConsentEvent.objects.get(kind=EventKind.REVOKED)
    consent = contact_get_by_phone(PHONES[1]).consents.get()
    confirmed = ConsentEvent.objects.get(kind=EventKind.CONFIRMED, contact=consent.contact)
    with triggers_lifted():
        _remove_and_rechain(stop.seq)
        raw_sql("DELETE FROM consent_ledgercheckpoint")
        raw_sql("UPDATE consent_consent SET status = %s, revoked_at = NULL, source = %s WHERE id = %s",
                [ConsentStatus.ACTIVE, confirmed.source, consent.pk])
    assert not LedgerCheckpoint.objects.exists()

    for resume in (False, True):
        report = verify_ledger(resume=resume)
        assert not report.ok
        assert "outside the database" in report.problem
    code, _, err = _verify_command()
    assert code == 1 and "first bad sequence number" in err
    with pytest.raises(LedgerNotIntact):
        checkpoint_create()
    assert not LedgerCheckpoint.objects.exists()


def test_a_truncated_tail_with_its_checkpoints_is_caught(ledger):
    checkpoint = checkpoint_create()
    last = ConsentEvent.objects.get(seq=checkpoint.seq)
    with triggers_lifted():
        raw_sql("DELETE FROM consent_consentevent WHERE seq = %s", [checkpoint.seq])
        raw_sql("UPDATE consent_chainhead SET seq = %s, hash = %s WHERE id = 1", [checkpoint.seq - 1, last.prev_hash])
        raw_sql("DELETE FROM consent_ledgercheckpoint")
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq == checkpoint.seq and "events were removed" in report.problem
    with pytest.raises(LedgerNotIntact):
        checkpoint_create()


def test_b_an_active_consent_inserted_with_no_event_is_caught(ledger, auditor_client):
    contact = services.contact_get_or_create(phone="+14155550177")
    now = timezone.now()
    raw_sql("INSERT INTO consent_consent (contact_id, topic_id, channel, status, text_id, source, confirmed_at, "
            "updated_at) VALUES (%s, %s, 'sms', 'active', %s, 'api', %s, %s)",
            [contact.pk, ledger.pk, ledger.current_text_id, now, now])
    inserted = contact.consents.get()
    assert verify_ledger().ok  # the chain itself is untouched

    code, out, err = _verify_command()
    assert code == 1
    assert f"consent {inserted.pk} ({ledger.slug}/sms" in err and "no ledger event" in err

    data = auditor_client.get("/api/v1/audit/verify/").json()
    assert data["ok"] is False and data["events"] == ConsentEvent.objects.count() and "head" in data
    assert data["state"]["ok"] is False
    assert data["state"]["first_mismatch"]["consent_id"] == inserted.pk
    assert data["state"]["first_mismatch"]["topic"] == ledger.slug


def test_c_events_moved_to_another_contact_are_caught(ledger):
    victim = contact_get_by_phone(PHONES[1])
    other = contact_get_by_phone(PHONES[2])
    stop = ConsentEvent.objects.get(kind=EventKind.REVOKED, contact=victim)
    with triggers_lifted():
        raw_sql("UPDATE consent_consentevent SET contact_id = %s WHERE seq = %s", [other.pk, stop.seq])
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq == stop.seq and "subject" in report.problem
    code, _, err = _verify_command()
    assert code == 1 and f"first bad sequence number {stop.seq}" in err


def test_c_every_event_of_a_contact_moved_is_caught_at_the_first(ledger):
    victim, other = contact_get_by_phone(PHONES[1]), contact_get_by_phone(PHONES[2])
    first = ConsentEvent.objects.filter(contact=victim).order_by("seq").first()
    with triggers_lifted():
        raw_sql("UPDATE consent_consentevent SET contact_id = %s WHERE contact_id = %s", [other.pk, victim.pk])
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq == first.seq


def test_the_intact_ledger_and_its_rows_verify(ledger, auditor_client):
    checkpoint_create()
    code, out, _ = _verify_command()
    assert code == 0 and "Ledger intact" in out and "Consent state matches the ledger" in out
    data = auditor_client.get("/api/v1/audit/verify/").json()
    assert data["ok"] is True and data["state"] == {"ok": True, "consents": 3, "events": data["events"],
                                                    "first_mismatch": None}
    assert data["external_checkpoint"]["seq"] == data["head"]["seq"]


def test_verify_command_json_carries_the_state(ledger):
    import io

    out = io.StringIO()
    call_command("verify_consent_log", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["ok"] is True and data["state"]["ok"] is True


def test_b_a_revoked_consent_set_active_on_its_old_confirmation_is_caught(ledger):
    """The row the send-time gate would refuse (its event was revoked since) is also named by verification."""
    contact = contact_get_by_phone(PHONES[1])  # confirmed, then STOP
    consent = contact.consents.get()
    old = ConsentEvent.objects.filter(contact=contact, kind=EventKind.CONFIRMED).latest("seq")
    raw_sql("UPDATE consent_consent SET status = 'active', revoked_at = NULL, source = %s, current_event_id = %s "
            "WHERE id = %s", [old.source, old.pk, consent.pk])
    assert verify_ledger().ok  # the chain itself is untouched
    code, out, err = _verify_command()
    assert code == 1 and f"consent {consent.pk} " in err


def test_b_a_pointer_moved_to_another_event_is_caught(ledger):
    """An active consent pointed at an event that did not make it current: what the gate trusts is checked too."""
    contact = contact_get_by_phone(PHONES[0])
    consent = contact.consents.get()
    requested = ConsentEvent.objects.filter(contact=contact, kind=EventKind.REQUESTED).latest("seq")
    raw_sql("UPDATE consent_consent SET current_event_id = %s WHERE id = %s", [requested.pk, consent.pk])
    code, out, err = _verify_command()
    assert code == 1 and "current_event" in err and f"consent {consent.pk} " in err
