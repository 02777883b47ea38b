"""End to end, as an auditor sees it: every promotional message carries the ledger event that authorised it,
a consent ended before a claim is never a justification, and staff changes are on record and tamper-evident."""

import io

import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction

from broadcasts import sending
from broadcasts.models import Broadcast, Delivery, DeliveryStatus, SkipReason
from consent import services as consent_services
from consent.audit.actions import verify_actions
from consent.audit.checkpoints import checkpoint_create
from consent.models import ConsentEvent, EventKind, Source, StaffAction
from tests.consent.audit.conftest import raw_sql, triggers_lifted
from tests.prompts import deliver_prompts

from .conftest import phone_for
from .test_sending import FakeProvider

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture(autouse=True)
def signing_key(settings, tmp_path):
    settings.AUDIT_SIGNING_KEY = ""
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "audit-signing-key.pem"


@pytest.fixture
def fake_provider(monkeypatch):
    provider = FakeProvider()
    monkeypatch.setattr(sending, "thread_provider", lambda channel: provider)
    return provider


def verify(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_consent_log", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return exc.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def confirmed(topic, i):
    consent_services.optin_request(phone=phone_for(i), topic=topic, channel="sms", source=Source.API)
    contact = consent_services.contact_get_or_create(phone=phone_for(i))
    deliver_prompts(contact=contact, topic=topic, channel="sms")
    consent_services.optin_confirm_by_reply(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    return contact, ConsentEvent.objects.get(contact=contact, kind=EventKind.CONFIRMED)


def broadcast_sent(client, topic, run_on_commit, name):
    created = client.post(f"{API}/broadcasts/", {"name": name, "topic": topic.slug, "channel": "sms",
                                                  "body": "Sale today! STOP to opt out.",
                                                  "respect_quiet_hours": False}, format="json")
    assert created.status_code == 201, created.content
    with run_on_commit():  # the (eager) launch, fan-out and send tasks run on commit
        scheduled = client.post(f"{API}/broadcasts/{created.json()['id']}/schedule/", {}, format="json")
    assert scheduled.status_code == 200, scheduled.content
    return Broadcast.objects.get(pk=created.json()["id"])


def test_broadcast_stop_broadcast_then_tampering_is_caught(topic, fake_provider, run_on_commit, make_user,
                                                            marketer_client, auditor_client, settings):
    settings.BROADCAST_CLAIM_SIZE = 1  # one claim per recipient, so a STOP can land between two of them
    people = [confirmed(topic, i) for i in range(3)]
    first = broadcast_sent(marketer_client, topic, run_on_commit, "first")
    delivered = {d.contact_id: d for d in Delivery.objects.filter(broadcast=first)}
    assert len(fake_provider.sent) == 3
    for contact, event in people:
        assert delivered[contact.pk].status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED)
        assert delivered[contact.pk].authorized_by == event.seq  # the confirming event

    # STOP lands while the second broadcast runs: after its fan-out, before that contact's claim.
    stopped, _ = people[2]

    def stop_during_second(message, n):
        if n == 3:
            consent_services.consent_revoke(contact=stopped, channel="sms", source=Source.SMS_KEYWORD,
                                            reason="keyword", evidence={"inbound_text": "STOP"})

    fake_provider.on_send = stop_during_second
    second = broadcast_sent(marketer_client, topic, run_on_commit, "second")
    skipped = Delivery.objects.get(broadcast=second, contact=stopped)
    assert skipped.status == DeliveryStatus.SKIPPED and skipped.skip_reason == SkipReason.NOT_CURRENT
    assert skipped.authorized_by is None
    assert len(fake_provider.sent) == 5

    # The deliveries API and the proof show the authorisation.
    rows = marketer_client.get(f"{API}/broadcasts/{second.pk}/deliveries/").json()["results"]
    by_phone = {r["phone"]: r for r in rows}
    assert by_phone[stopped.phone]["skip_reason"] == "not_current" and not by_phone[stopped.phone]["rule"]
    proof = auditor_client.get(f"{API}/contacts/{stopped.phone}/proof/").json()
    promos = proof["promotional_messages"]
    assert [(p["broadcast"], p["authorized_by"], p["skip_reason"]) for p in promos] == [
        ("first", people[2][1].seq, None), ("second", None, "not_current")]
    assert promos[0]["authorising_event"]["kind"] == "confirmed"
    assert promos[0]["authorising_event"]["text_version"] == topic.current_text.version

    code, out, err = verify("--deliveries")
    assert code == 0, out + err
    assert "5 handed-over deliveries" in out

    # One row's authorisation changed behind the application's back: pointed at the other contact's event.
    victim = Delivery.objects.get(broadcast=second, contact=people[1][0])
    raw_sql("UPDATE broadcasts_delivery SET authorized_by = %s WHERE id = %s", [people[0][1].seq, victim.pk])
    code, out, err = verify("--deliveries")
    assert code == 1
    assert f"first bad delivery {victim.pk}" in err and "another contact" in err
    # The skipped row made to look handed over, pointing at the revoked contact's old confirmation.
    raw_sql("UPDATE broadcasts_delivery SET authorized_by = %s WHERE id = %s", [people[1][1].seq, victim.pk])
    victim = skipped
    raw_sql("UPDATE broadcasts_delivery SET status = 'sent', authorized_by = %s, claimed_at = %s WHERE id = %s",
            [people[2][1].seq, Delivery.objects.get(broadcast=second, contact=people[1][0]).claimed_at, victim.pk])
    code, out, err = verify("--deliveries")
    assert code == 1 and f"first bad delivery {victim.pk}" in err and "ended that consent" in err


def test_staff_actions_are_listed_with_actor_and_before_after_and_tampering_is_caught(
        topic, make_user, marketer_client, auditor_client, run_on_commit, fake_provider):
    changed = marketer_client.patch(f"{API}/topics/{topic.slug}/", {"name": "Acme deals",
                                                                   "help_message": "Acme. Reply STOP."}, format="json")
    assert changed.status_code == 200, changed.content
    confirmed(topic, 7)
    broadcast_sent(marketer_client, topic, run_on_commit, "sale")
    make_user("auditor", name="ann")
    make_user("admin", name="ann")  # a role change

    listed = auditor_client.get(f"{API}/audit/actions/").json()["results"]
    by_action = {}
    for record in listed:
        by_action.setdefault(record["action"], []).append(record)
    update = by_action["topic.update"][0]
    assert update["actor"] == "user:marketer-user" and update["object_repr"] == "promo"
    assert update["before"]["name"] == "Acme promotions" and update["after"]["name"] == "Acme deals"
    assert update["before"]["text_version"] == 1 and update["after"]["text_version"] == 2
    assert update["ip"] == "127.0.0.1" and update["via"] == "api"
    schedule = by_action["broadcast.schedule"][0]
    assert schedule["before"]["status"] == "draft" and schedule["after"]["status"] != "draft"
    role = [r for r in by_action["user.update"] if r["object_repr"] == "ann"][0]
    assert role["before"]["roles"] == ["auditor"] and role["after"]["roles"] == ["admin"]
    assert role["actor"].startswith("os:")
    # Filters.
    only = auditor_client.get(f"{API}/audit/actions/", {"action": "broadcast.", "actor": "user:marketer-user"}).json()
    assert {r["action"] for r in only["results"]} == {"broadcast.create", "broadcast.schedule"}
    assert auditor_client.get(f"{API}/audit/actions/", {"since": "yesterday"}).status_code == 400
    assert marketer_client.get(f"{API}/audit/actions/").status_code == 403

    assert verify()[0] == 0
    checkpoint_create()
    # The database refuses changes to the log ...
    with pytest.raises(DatabaseError), transaction.atomic():
        raw_sql("UPDATE consent_staffaction SET actor = 'user:someone-else' WHERE seq = %s", [update["sequence"]])
    # ... and one changed with the triggers lifted is caught by verification.
    with triggers_lifted():
        raw_sql("UPDATE consent_staffaction SET after = %s WHERE seq = %s",
                ['{"name": "Innocent"}', update["sequence"]])
    report = verify_actions()
    assert not report.ok and report.first_bad_seq == update["sequence"] and "changed" in report.problem
    code, out, err = verify()
    assert code == 1 and f"first bad action {update['sequence']}" in err


def test_removing_the_last_action_and_moving_the_head_is_caught_by_the_signed_checkpoint(topic, marketer_client):
    marketer_client.patch(f"{API}/topics/{topic.slug}/", {"name": "One"}, format="json")
    marketer_client.patch(f"{API}/topics/{topic.slug}/", {"name": "Two"}, format="json")
    checkpoint = checkpoint_create()
    last = StaffAction.objects.order_by("-seq").first()
    assert last.action == "topic.update" and checkpoint.actions_seq == last.seq == StaffAction.objects.count()
    before = StaffAction.objects.get(seq=last.seq - 1)
    with triggers_lifted():
        raw_sql("DELETE FROM consent_staffaction WHERE seq = %s", [last.seq])
    raw_sql("UPDATE consent_chainhead SET seq = %s, hash = %s WHERE id = 2", [before.seq, before.hash])
    report = verify_actions()
    assert not report.ok and "removed" in report.problem
