"""Verification catches what is changed, deleted or inserted behind the application's back, and resumes."""

import io
import json

import pytest
from django.core.management import call_command

from consent.audit.checkpoints import LedgerNotIntact, checkpoint_create
from consent.hashing import chain_hash
from consent.ledger import chained_fields
from consent.models import ChainHead, ConsentEvent, LedgerCheckpoint
from consent.verification import verify_chain, verify_ledger

from .conftest import raw_sql, triggers_lifted

pytestmark = pytest.mark.django_db


def run_verify(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_consent_log", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def rehash_from(seq):
    """Recompute every hash from `seq` on and the head, as an attacker who knows the algorithm would."""
    prev = ConsentEvent.objects.get(seq=seq - 1).hash if seq > 1 else "0" * 64
    for event in ConsentEvent.objects.filter(seq__gte=seq).order_by("seq"):
        new = chain_hash(prev, chained_fields(event))
        raw_sql("UPDATE consent_consentevent SET prev_hash = %s, hash = %s WHERE id = %s", [prev, new, event.pk])
        prev = new
    raw_sql("UPDATE consent_chainhead SET hash = %s WHERE id = 1", [prev])


def test_intact_ledger_verifies(ledger):
    report = verify_ledger()
    assert report.ok, report
    assert report.events == ConsentEvent.objects.count() == report.head_seq
    code, out, _ = run_verify()
    assert code == 0
    assert f"{report.events} events verified" in out


def test_triggers_refuse_changes_without_a_superuser(ledger):
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError), transaction.atomic():
        ConsentEvent.objects.filter(seq=2).update(kind="confirmed")


def test_changed_event_is_caught(ledger):
    with triggers_lifted():
        raw_sql("UPDATE consent_consentevent SET channel = 'whatsapp' WHERE seq = 3")
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq == 3
    assert "changed" in report.problem
    code, _, err = run_verify()
    assert code == 1
    assert "first bad sequence number 3" in err


def test_changed_evidence_is_caught(ledger):
    event = ConsentEvent.objects.get(seq=4)
    with triggers_lifted():
        raw_sql("UPDATE consent_consentevent SET evidence = %s WHERE seq = 4",
                [json.dumps({**event.evidence, "ip": "198.51.100.1"})])
    assert verify_ledger().first_bad_seq == 4


def test_changed_and_rehashed_chain_is_caught_by_the_signed_checkpoint(ledger):
    checkpoint = checkpoint_create()
    assert checkpoint.seq == ConsentEvent.objects.count()
    with triggers_lifted():
        raw_sql("UPDATE consent_consentevent SET kind = 'confirmed' WHERE seq = 2")
        rehash_from(2)
    assert verify_chain().ok  # the bare chain is self-consistent again...
    for resume in (False, True):
        report = verify_ledger(resume=resume)  # ...but it no longer reaches the signed head
        assert not report.ok
        assert report.first_bad_seq == checkpoint.seq


def test_deleted_event_is_caught(ledger):
    with triggers_lifted():
        raw_sql("DELETE FROM consent_consentevent WHERE seq = 5")
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq == 5
    assert "missing" in report.problem


def test_deleted_last_event_is_caught(ledger):
    last = ConsentEvent.objects.count()
    with triggers_lifted():
        raw_sql("DELETE FROM consent_consentevent WHERE seq = %s", [last])
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq == last


def test_deleted_and_renumbered_is_caught(ledger):
    with triggers_lifted():
        raw_sql("DELETE FROM consent_consentevent WHERE seq = 3")
        for event in ConsentEvent.objects.filter(seq__gt=3).order_by("seq"):
            raw_sql("UPDATE consent_consentevent SET seq = %s WHERE id = %s", [event.seq - 1, event.pk])
        raw_sql("UPDATE consent_chainhead SET seq = seq - 1 WHERE id = 1")
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq == 3


def _forged_event(template: ConsentEvent, *, seq: int, prev_hash: str):
    import uuid

    forged = ConsentEvent(
        seq=seq, uuid=uuid.uuid4(), occurred_at=template.occurred_at, recorded_at=template.recorded_at, kind="confirmed",
        contact_id=template.contact_id, subject=template.subject, topic_id=template.topic_id,
        topic_slug=template.topic_slug, channel=template.channel, source="admin", actor="user:mallory",
        text_id=template.text_id, text_version=template.text_version, text_sha256=template.text_sha256,
        evidence={"forged": True}, prev_hash=prev_hash,
    )
    forged.hash = chain_hash(prev_hash, chained_fields(forged))
    return forged


def test_event_inserted_in_the_middle_is_caught(ledger):
    third = ConsentEvent.objects.get(seq=3)
    with triggers_lifted():
        for event in ConsentEvent.objects.filter(seq__gte=4).order_by("-seq"):
            raw_sql("UPDATE consent_consentevent SET seq = %s WHERE id = %s", [event.seq + 1, event.pk])
        _forged_event(third, seq=4, prev_hash=third.hash).save(force_insert=True)
        raw_sql("UPDATE consent_chainhead SET seq = seq + 1 WHERE id = 1")
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq == 5  # the forged event links back, the next no longer does


def test_event_inserted_after_the_head_is_caught(ledger):
    head = ChainHead.objects.get(pk=1)
    last = ConsentEvent.objects.get(seq=head.seq)
    _forged_event(last, seq=head.seq + 1, prev_hash=last.hash).save(force_insert=True)  # INSERT is allowed
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq == head.seq + 1
    assert "beyond the recorded chain head" in report.problem


def test_event_inserted_with_a_bogus_hash_is_caught(ledger):
    head = ChainHead.objects.get(pk=1)
    last = ConsentEvent.objects.get(seq=head.seq)
    forged = _forged_event(last, seq=head.seq + 1, prev_hash=last.hash)
    forged.hash = "f" * 64
    forged.save(force_insert=True)
    raw_sql("UPDATE consent_chainhead SET seq = seq + 1, hash = %s WHERE id = 1", ["f" * 64])
    report = verify_ledger()
    assert not report.ok and report.first_bad_seq == head.seq + 1


def test_empty_ledger_verifies(db, signing_key):
    report = verify_ledger()
    assert report.ok and report.events == 0 and report.head_seq == 0


def test_resume_walks_only_what_follows_the_checkpoint(ledger, topic, run_on_commit):
    from consent import services

    checkpoint = checkpoint_create()
    with run_on_commit():
        services.optin_request(phone="+14155550199", topic=topic, channel="sms", source="api")
    report = verify_ledger(resume=True)
    assert report.ok
    assert report.checked_from_seq == checkpoint.seq + 1
    assert report.events == ConsentEvent.objects.count() - checkpoint.seq == 2
    assert report.checkpoint["seq"] == checkpoint.seq
    full = verify_ledger()
    assert full.ok and full.events == ConsentEvent.objects.count()
    code, out, _ = run_verify("--resume")
    assert code == 0 and f"from sequence {checkpoint.seq + 1}" in out


def test_resume_ignores_a_checkpoint_with_a_forged_signature(ledger):
    checkpoint = checkpoint_create()
    LedgerCheckpoint.objects.create(seq=checkpoint.seq, hash="a" * 64, signed_at=checkpoint.signed_at,
                                    signature=checkpoint.signature, public_key=checkpoint.public_key)
    report = verify_ledger(resume=True)
    assert report.ok and report.checkpoint["hash"] == checkpoint.hash


def test_a_change_before_the_checkpoint_is_left_to_the_full_walk(ledger):
    """Resuming trusts the signed prefix (that is what makes it fast); the full walk still finds the change."""
    checkpoint = checkpoint_create()
    with triggers_lifted():
        raw_sql("UPDATE consent_consentevent SET actor = 'user:mallory' WHERE seq = 2")
    resumed = verify_ledger(resume=True)
    assert resumed.ok and resumed.checked_from_seq == checkpoint.seq + 1
    full = verify_ledger()
    assert not full.ok and full.first_bad_seq == 2


def test_no_checkpoint_is_signed_over_a_broken_chain(ledger):
    with triggers_lifted():
        raw_sql("DELETE FROM consent_consentevent WHERE seq = 2")
    with pytest.raises(LedgerNotIntact):
        checkpoint_create()
    assert not LedgerCheckpoint.objects.exists()


def test_checkpoint_is_reused_while_the_head_does_not_move(ledger):
    first = checkpoint_create()
    assert checkpoint_create().pk == first.pk
    assert LedgerCheckpoint.objects.count() == 1


def test_checkpoint_task_signs_the_head(ledger):
    from consent.audit.tasks import ledger_checkpoint_task

    assert ledger_checkpoint_task.delay().get() == ConsentEvent.objects.count()
    assert LedgerCheckpoint.objects.count() == 1


def test_checkpoint_task_is_scheduled_and_registered(settings):
    from config.celery import app

    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "consent.audit.tasks.ledger_checkpoint_task" in entries
    app.loader.import_default_modules()
    assert "consent.audit.tasks.ledger_checkpoint_task" in app.tasks


def test_verification_runs_in_chunks(ledger):
    assert verify_chain(chunk_size=2).events == ConsentEvent.objects.count()


def test_daily_full_verification_task(ledger, settings):
    from consent.audit.tasks import ledger_verify_task

    assert "consent.audit.tasks.ledger_verify_task" in {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    checkpoint_create()
    assert ledger_verify_task.delay().get() is True
    with triggers_lifted():
        raw_sql("UPDATE consent_consentevent SET actor = 'user:mallory' WHERE seq = 2")
    assert ledger_verify_task.delay().get() is False  # found although resumed runs trust the signed prefix


def test_key_rotation_keeps_old_checkpoints_only_when_their_key_is_trusted(ledger, settings, tmp_path, api_client):
    from consent.audit import signing

    old = checkpoint_create()
    old_public = signing.public_key_pem()
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "rotated.pem"  # a new key
    assert signing.public_key_pem() != old_public
    report = verify_ledger(resume=True)
    assert report.checked_from_seq == 1 and report.checkpoint is None  # the old one no longer counts
    # ...and the copy kept outside the database cannot be checked any more: that is said, not skipped.
    assert not report.ok and "AUDIT_PREVIOUS_PUBLIC_KEYS" in report.problem

    settings.AUDIT_PREVIOUS_PUBLIC_KEYS = old_public.replace("\n", "\\n")
    report = verify_ledger(resume=True)
    assert report.ok and report.checkpoint["seq"] == old.seq and report.checked_from_seq == old.seq + 1
    new = checkpoint_create()
    assert new.pk != old.pk and new.seq == old.seq  # exports are signed with today's key only
    data = api_client.get("/api/v1/audit/public-key/").json()
    assert [k["public_key"] for k in data["previous_keys"]] == [old_public]
    assert data["latest_checkpoint"]["key_id"] == data["key_id"]


def test_truncation_behind_a_signed_checkpoint_is_caught(ledger):
    checkpoint = checkpoint_create()
    last = ConsentEvent.objects.get(seq=checkpoint.seq)
    with triggers_lifted():
        raw_sql("DELETE FROM consent_consentevent WHERE seq = %s", [checkpoint.seq])
        raw_sql("UPDATE consent_chainhead SET seq = %s, hash = %s WHERE id = 1", [checkpoint.seq - 1, last.prev_hash])
    assert verify_chain().ok  # a shorter chain is self-consistent...
    for resume in (False, True):
        report = verify_ledger(resume=resume)  # ...but the signed head is gone
        assert not report.ok and report.first_bad_seq == checkpoint.seq
