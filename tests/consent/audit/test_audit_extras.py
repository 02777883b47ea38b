"""Consent receipts, retention, staff actions in exports, the HTTP export's manifest, and checkpoints made before
the staff action log still verifying."""

import hashlib
import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from consent import services
from consent.audit import signing
from consent.audit.actions import verify_actions
from consent.audit.checkpoints import checkpoint_create, checkpoint_record
from consent.audit.sink import checkpoint_sink
from consent.audit.trust import checkpoint_payload
from consent.models import ConsentEvent, Contact, EventKind, LedgerCheckpoint, Message, Source, Suppression
from consent.retention import retention_candidates, retention_erase
from consent.selectors import contact_get_by_phone
from consent.verification import verify_ledger

from .conftest import PHONES, raw_sql

pytestmark = pytest.mark.django_db
API = "/api/v1"


def test_receipts_follow_kantara_v1_1_and_the_proof_links_them(ledger, auditor_client):
    proof = auditor_client.get(f"{API}/contacts/{PHONES[0]}/proof/").json()
    href = proof["receipts"]["href"]
    assert href.endswith(f"/api/v1/contacts/{PHONES[0]}/receipts/") and proof["receipts"]["format"] == "KI-CR-v1.1.0"
    data = auditor_client.get(href).json()
    assert [r["topic"] for r in data["receipts"]] == ["promo"]  # PHONES[0] confirmed one consent
    item = data["receipts"][0]
    receipt = item["receipt"]
    confirmed = ConsentEvent.objects.get(contact__phone=PHONES[0], kind=EventKind.CONFIRMED)
    assert item["ledger_event"]["sequence"] == confirmed.seq
    for name in ("version", "jurisdiction", "consentTimestamp", "collectionMethod", "consentReceiptID", "publicKey",
                 "language", "piiPrincipalId", "piiControllers", "policyUrl", "services", "sensitive", "spiCat"):
        assert name in receipt, name
    assert receipt["version"] == "KI-CR-v1.1.0" and receipt["piiPrincipalId"] == PHONES[0]
    assert receipt["consentTimestamp"] == int(confirmed.occurred_at.timestamp())
    assert receipt["jurisdiction"] == "US" and "Double opt-in: requested via api" in receipt["collectionMethod"]
    purpose = receipt["services"][0]["purposes"][0]
    assert purpose["purpose"] == ledger.current_text.consent_text and purpose["consentType"] == "EXPLICIT"
    assert signing.signature_valid(receipt, item["signature"])
    # The same receipt twice: stable id.
    assert auditor_client.get(href).json()["receipts"][0]["receipt"]["consentReceiptID"] == receipt["consentReceiptID"]
    # Never confirmed: no receipt.
    assert auditor_client.get(f"{API}/contacts/{PHONES[2]}/receipts/").json()["receipts"] == []
    assert auditor_client.get(f"{API}/contacts/+19999999999/receipts/").status_code == 404


def test_retention_erases_only_who_is_past_it_and_the_proof_survives(ledger, settings, auditor_client):
    settings.CONSENT_RETENTION_DAYS = 30
    later = timezone.now() + timedelta(days=31)
    # PHONES[0]: still current (confirmed; the topic lives 365 days). PHONES[1]: revoked. PHONES[2]: pending, lapsed.
    # Only those without a current consent go, and only once nothing came from them for 30 days.
    assert list(retention_candidates()) == []
    due = {c.contact_id: c for c in retention_candidates(now=later)}
    gone = {contact_get_by_phone(PHONES[1]).pk, contact_get_by_phone(PHONES[2]).pk}
    assert set(due) == gone
    assert "no current consent" in due[contact_get_by_phone(PHONES[1]).pk].reason
    # A message from the person keeps them.
    Message.objects.create(contact=contact_get_by_phone(PHONES[2]), channel="sms", direction="in", kind="inbound",
                           body="hello", status="received")
    raw_sql("UPDATE consent_message SET created_at = %s WHERE body = 'hello'", [later - timedelta(days=1)])
    assert set(c.contact_id for c in retention_candidates(now=later)) == {contact_get_by_phone(PHONES[1]).pk}

    out, err = io.StringIO(), io.StringIO()
    call_command("retention_sweep", "--dry-run", "--days", "1", stdout=out, stderr=err)
    assert "would be erased" in err.getvalue() and contact_get_by_phone(PHONES[1]) is not None

    revoked = contact_get_by_phone(PHONES[1])
    erased = retention_erase(now=later)
    assert [c.contact_id for c in erased] == [revoked.pk]
    revoked = Contact.objects.get(pk=revoked.pk)
    assert revoked.phone is None and revoked.erased_at is not None
    assert Suppression.objects.filter(phone_pseudonym=revoked.phone_pseudonym).exists()
    event = ConsentEvent.objects.filter(contact=revoked).order_by("-seq").first()
    assert event.kind == EventKind.ERASED and event.source == Source.SYSTEM and event.actor == "system:retention"
    assert verify_ledger().ok
    assert retention_erase(now=later) == []  # idempotent
    # The proof is still there, by number (found by pseudonym).
    assert auditor_client.get(f"{API}/contacts/{PHONES[1]}/proof/").json()["verification"]["ok"]
    # A suppressed number cannot come back.
    with pytest.raises(Exception):  # noqa: B017 (the opt-in service refuses in its own words)
        services.optin_request(phone=PHONES[1], topic=ledger, channel="sms", source=Source.API)


def test_export_includes_the_staff_actions_within_the_signed_checkpoint(ledger, marketer_client, tmp_path):
    marketer_client.patch(f"{API}/topics/{ledger.slug}/", {"name": "Renamed"}, format="json")
    path = tmp_path / "ledger.jsonl"
    out = io.StringIO()
    call_command("export_consent_log", "--format", "jsonl", "--output", str(path), "--include", "actions", stdout=out)
    manifest = json.loads((tmp_path / "ledger.jsonl.manifest.json").read_text())
    lines = (tmp_path / "ledger.jsonl.actions.jsonl").read_bytes()
    records = [json.loads(line) for line in lines.splitlines()]
    assert [r["action"] for r in records][-1] == "topic.update"
    assert manifest["actions"]["count"] == len(records) and manifest["actions"]["head"]["seq"] == records[-1]["sequence"]
    assert manifest["actions"]["sha256"] == hashlib.sha256(lines).hexdigest()
    assert manifest["checkpoint"]["actions"] == manifest["actions"]["head"]
    signature = manifest.pop("signature")
    assert signing.signature_valid(manifest, signature)


def test_http_export_offers_its_signed_manifest(ledger, auditor_client):
    checkpoint = checkpoint_create()
    manifest = auditor_client.get(f"{API}/audit/export/manifest/", {"format": "csv"}).json()
    assert manifest["chain_head"] == {"seq": checkpoint.seq, "hash": checkpoint.hash}
    assert manifest["checkpoint"]["seq"] == checkpoint.seq
    services.optin_request(phone="+14155550188", topic=ledger, channel="sms", source=Source.API)  # the head moves on
    body = b"".join(auditor_client.get(f"{API}/audit/export/", {"format": "csv", "upto": checkpoint.seq})
                    .streaming_content)
    assert hashlib.sha256(body).hexdigest() == manifest["sha256"] and len(body) == manifest["bytes"]
    assert manifest["count"] == checkpoint.seq
    signature = manifest.pop("signature")
    assert signing.signature_valid(manifest, signature)
    assert auditor_client.get(f"{API}/audit/export/manifest/", {"upto": "x"}).status_code == 400
    assert auditor_client.get(f"{API}/audit/export/", {"upto": "999999"}).status_code == 400


def test_a_checkpoint_signed_before_the_action_log_still_verifies(ledger):
    head = ConsentEvent.objects.order_by("-seq").first()
    signed_at = timezone.now()
    old = checkpoint_payload(seq=head.seq, hash=head.hash, signed_at=signed_at)  # no "actions": the old format
    assert "actions" not in old
    checkpoint = LedgerCheckpoint.objects.create(seq=head.seq, hash=head.hash, signed_at=signed_at,
                                                 signature=signing.sign(old), public_key=signing.public_key_pem())
    checkpoint_sink().write(checkpoint_record(checkpoint))
    report = verify_ledger(resume=True)
    assert report.ok and report.checkpoint["seq"] == head.seq and report.checked_from_seq == head.seq + 1
    assert verify_actions().ok
    # The next checkpoint signs the action head too (a new one: the old did not cover it).
    newer = checkpoint_create()
    assert newer.pk != checkpoint.pk and newer.actions_seq == 0
