"""No event, no send: only a consent pointing at its own confirmation (or import) in the ledger passes
the audience and the send-time gate, and every handed-over delivery records that event's seq."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from broadcasts import sending, services
from broadcasts.models import Delivery, DeliveryStatus, SkipReason
from consent import services as consent_services
from consent.models import Consent, ConsentEvent, ConsentStatus, EventKind, Source
from consent.selectors import audience_consents, contact_may_receive_promotion
from tests.prompts import deliver_prompts

from .conftest import phone_for
from .test_sending import FakeProvider, make, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_provider(monkeypatch):
    provider = FakeProvider()
    monkeypatch.setattr(sending, "thread_provider", lambda channel: provider)
    return provider


def confirmed(topic, i, channel="sms"):
    """A contact who opted in and replied YES, as the services record it; returns (contact, confirmed event)."""
    consent_services.optin_request(phone=phone_for(i), topic=topic, channel=channel, source=Source.API)
    contact = consent_services.contact_get_or_create(phone=phone_for(i))
    deliver_prompts(contact=contact, topic=topic, channel=channel)  # a YES confirms only prompts that left
    consent_services.optin_confirm_by_reply(contact=contact, channel=channel, source=Source.SMS_KEYWORD)
    return contact, ConsentEvent.objects.get(contact=contact, kind=EventKind.CONFIRMED, topic=topic, channel=channel)


def active_row_behind_the_ledgers_back(topic, i):
    """A contact with an active consent row inserted by SQL, with no ledger event at all."""
    contact = consent_services.contact_get_or_create(phone=phone_for(i))
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO consent_consent (contact_id, topic_id, channel, status, text_id, source, confirmed_at, updated_at) "
            "VALUES (%s, %s, 'sms', 'active', %s, 'import', %s, %s)",
            [contact.pk, topic.pk, topic.current_text_id, now, now],
        )
    return contact


def set_pointer(contact, topic, event, status="active"):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE consent_consent SET status = %s, current_event_id = %s WHERE contact_id = %s AND topic_id = %s",
                       [status, event.pk, contact.pk, topic.pk])


def audience_of(topic):
    return set(audience_consents(topic=topic, channel="sms").values_list("contact_id", flat=True))


def test_an_active_row_with_no_event_is_not_in_the_audience_and_is_never_sent(topic, fake_provider, run_on_commit):
    real, _ = confirmed(topic, 1)
    forged = active_row_behind_the_ledgers_back(topic, 2)
    assert audience_of(topic) == {real.pk}
    assert not contact_may_receive_promotion(contact_id=forged.pk, topic_id=topic.pk, channel="sms")
    broadcast = make(topic)
    services.broadcast_schedule(broadcast=broadcast)
    assert services.broadcast_launch(broadcast_id=broadcast.pk)
    # Even with a delivery row (made before the row was forged, say), the send-time gate skips it.
    services.broadcast_fanout(broadcast_id=broadcast.pk)
    Delivery.objects.create(broadcast=broadcast, contact=forged, created_at=timezone.now())
    sending.broadcast_send_range(broadcast_id=broadcast.pk, lo=0, hi=None)
    assert [m.to for m in fake_provider.sent] == [real.phone]
    skipped = Delivery.objects.get(broadcast=broadcast, contact=forged)
    assert skipped.status == DeliveryStatus.SKIPPED and skipped.skip_reason == SkipReason.NOT_CURRENT
    assert skipped.authorized_by is None


def test_a_row_pointing_at_another_contacts_confirmation_is_never_sent(topic, fake_provider, run_on_commit):
    real, event = confirmed(topic, 1)
    forged = active_row_behind_the_ledgers_back(topic, 2)
    set_pointer(forged, topic, event)
    assert audience_of(topic) == {real.pk}
    broadcast = make(topic)
    services.broadcast_schedule(broadcast=broadcast)
    assert services.broadcast_launch(broadcast_id=broadcast.pk)
    services.broadcast_fanout(broadcast_id=broadcast.pk)
    Delivery.objects.create(broadcast=broadcast, contact=forged, created_at=timezone.now())
    sending.broadcast_send_range(broadcast_id=broadcast.pk, lo=0, hi=None)
    assert [m.to for m in fake_provider.sent] == [real.phone]
    assert Delivery.objects.get(broadcast=broadcast, contact=forged).skip_reason == SkipReason.NOT_CURRENT


def test_a_pointer_to_another_topics_or_channels_event_or_a_request_does_not_pass(topic, fake_provider):
    other = consent_services.topic_create(slug="news", name="News", keywords=["NEWS"], consent_text="c",
                                          confirmation_message="Reply YES", help_message="h", consent_ttl_days=None)
    contact, _ = confirmed(topic, 1)
    _, other_topic_event = confirmed(other, 1)
    _, whatsapp_event = confirmed(topic, 1, channel="whatsapp")
    requested = ConsentEvent.objects.filter(contact=contact, kind=EventKind.REQUESTED, topic=topic, channel="sms").get()
    for event in (other_topic_event, whatsapp_event, requested):
        set_pointer(contact, topic, event)
        assert audience_of(topic) == set(), event.kind


def test_a_revoked_row_set_active_again_on_its_old_confirmation_is_never_sent(topic, fake_provider, run_on_commit):
    contact, event = confirmed(topic, 1)
    consent_services.consent_revoke(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    set_pointer(contact, topic, event)  # status and pointer put back behind the ledger's back
    assert Consent.objects.get(contact=contact).status == ConsentStatus.ACTIVE
    assert audience_of(topic) == set()
    assert not contact_may_receive_promotion(contact_id=contact.pk, topic_id=topic.pk, channel="sms")


def test_the_normal_flow_sends_and_records_the_confirmation_it_went_on(topic, fake_provider, run_on_commit, api_client,
                                                                        make_user):
    contacts = [confirmed(topic, i) for i in range(3)]
    broadcast = run(make(topic), run_on_commit)
    assert sorted(m.to for m in fake_provider.sent) == sorted(c.phone for c, _ in contacts)
    for contact, event in contacts:
        delivery = Delivery.objects.get(broadcast=broadcast, contact=contact)
        assert delivery.status == DeliveryStatus.SENT and delivery.authorized_by == event.seq
    _, token = make_user("marketer")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    listed = api_client.get(f"/api/v1/broadcasts/{broadcast.pk}/deliveries/").json()["results"]
    assert sorted(d["authorized_by"] for d in listed) == sorted(event.seq for _, event in contacts)


def test_a_reconfirmed_consent_is_authorised_by_its_newest_confirmation(topic, fake_provider, run_on_commit):
    contact, first = confirmed(topic, 1)
    consent_services.consent_revoke(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    consent_services.optin_request(phone=contact.phone, topic=topic, channel="sms", source=Source.SMS_KEYWORD)
    deliver_prompts(contact=contact)
    consent_services.optin_confirm_by_reply(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    newest = ConsentEvent.objects.filter(contact=contact, kind=EventKind.CONFIRMED).latest("seq")
    assert newest.seq > first.seq
    broadcast = run(make(topic), run_on_commit)
    assert Delivery.objects.get(broadcast=broadcast).authorized_by == newest.seq


def test_a_stop_between_fanout_and_claim_stops_the_send(topic, fake_provider, run_on_commit):
    (stopper, _), (other, _) = confirmed(topic, 1), confirmed(topic, 2)
    broadcast = make(topic)
    services.broadcast_schedule(broadcast=broadcast)
    assert services.broadcast_launch(broadcast_id=broadcast.pk)
    services.broadcast_fanout(broadcast_id=broadcast.pk)  # send tasks not run yet
    assert Delivery.objects.filter(broadcast=broadcast).count() == 2
    consent_services.consent_revoke(contact=stopper, channel="sms", source=Source.SMS_KEYWORD)
    sending.broadcast_send_range(broadcast_id=broadcast.pk, lo=0, hi=None)
    assert [m.to for m in fake_provider.sent] == [other.phone]
    stopped = Delivery.objects.get(broadcast=broadcast, contact=stopper)
    assert stopped.skip_reason == SkipReason.NOT_CURRENT and stopped.authorized_by is None


def test_the_pointer_follows_every_change_of_state(topic, now):
    contact, event = confirmed(topic, 1)
    consent = Consent.objects.get(contact=contact)
    assert consent.current_event_id == event.pk
    consent_services.consent_revoke(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    assert Consent.objects.get(contact=contact).current_event_id is None
    consent_services.optin_request(phone=contact.phone, topic=topic, channel="sms", source=Source.SMS_KEYWORD)
    deliver_prompts(contact=contact)
    consent_services.optin_confirm_by_reply(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    assert Consent.objects.get(contact=contact).current_event_id is not None
    # Past its lifetime the consent is re-requested: pending, no pointer.
    later = timezone.now() + timedelta(days=topic.consent_ttl_days + 1)
    consent_services.optin_request(phone=contact.phone, topic=topic, channel="sms", source=Source.API, now=later)
    assert Consent.objects.get(contact=contact).current_event_id is None


def test_expiry_clears_the_pointer(topic):
    contact, _ = confirmed(topic, 1)
    assert consent_services.consents_expire_due(now=timezone.now() + timedelta(days=topic.consent_ttl_days + 1)) == 1
    consent = Consent.objects.get(contact=contact)
    assert consent.status == ConsentStatus.EXPIRED and consent.current_event_id is None


def test_erasure_clears_the_pointer(topic):
    from consent.erasure import contact_erase

    contact, _ = confirmed(topic, 1)
    contact_erase(contact=contact, actor="user:admin")
    assert Consent.objects.get(contact=contact).current_event_id is None


def test_an_import_points_at_its_imported_event_and_an_expired_import_at_nothing(topic):
    now = timezone.now()
    records = [consent_services.ImportRecord(phone=phone_for(1), topic=topic, channel="sms", confirmed_at=now - timedelta(days=3),
                                             evidence={"form": "legacy"}),
               consent_services.ImportRecord(phone=phone_for(2), topic=topic, channel="sms",
                                             confirmed_at=now - timedelta(days=topic.consent_ttl_days + 3),
                                             evidence={"form": "legacy"})]
    consent_services.consents_import(records=records, actor="user:admin")
    fresh, stale = (Consent.objects.get(contact__phone=phone_for(i)) for i in (1, 2))
    assert fresh.current_event.kind == EventKind.IMPORTED and fresh.current_event.contact_id == fresh.contact_id
    assert stale.status == ConsentStatus.EXPIRED and stale.current_event_id is None
    assert audience_of(topic) == {fresh.contact_id}


def test_a_yes_confirming_several_topics_is_still_one_update_of_the_consents(topic):
    other = consent_services.topic_create(slug="news", name="News", keywords=["NEWS"], consent_text="c",
                                          confirmation_message="Reply YES", help_message="h", consent_ttl_days=365)
    for t in (topic, other):
        consent_services.optin_request(phone=phone_for(1), topic=t, channel="sms", source=Source.API)
    contact = consent_services.contact_get_or_create(phone=phone_for(1))
    deliver_prompts(contact=contact)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        confirmed_now = consent_services.optin_confirm_by_reply(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "consent_consent"')]
    assert len(confirmed_now) == 2 and len(updates) == 1
    for consent in Consent.objects.filter(contact=contact):
        assert consent.current_event.kind == EventKind.CONFIRMED and consent.current_event.topic_id == consent.topic_id


def test_the_backfill_points_active_consents_at_their_latest_standing_authorisation(topic):
    from importlib import import_module

    from django.apps import apps

    backfill = import_module("consent.migrations.0005_consent_current_event_backfill").backfill
    confirmed_contact, confirmed_event = confirmed(topic, 1)
    revoked_contact, old_confirmation = confirmed(topic, 2)
    consent_services.consent_revoke(contact=revoked_contact, channel="sms", source=Source.SMS_KEYWORD)
    forged = active_row_behind_the_ledgers_back(topic, 3)
    # As before the pointer existed: every row without one, the revoked row made active again.
    Consent.objects.update(current_event=None)
    Consent.objects.filter(contact=revoked_contact).update(status=ConsentStatus.ACTIVE)
    backfill(apps, SimpleNamespace(connection=connection))
    pointers = dict(Consent.objects.values_list("contact_id", "current_event_id"))
    assert pointers == {confirmed_contact.pk: confirmed_event.pk, revoked_contact.pk: None, forged.pk: None}
    assert old_confirmation.pk != confirmed_event.pk


def test_a_row_retried_after_a_transient_error_then_stopped_keeps_no_authorisation(topic, fake_provider, time_machine):
    from messaging.providers import TransientProviderError

    contact, event = confirmed(topic, 1)
    fake_provider.on_send = lambda message, n: (_ for _ in ()).throw(TransientProviderError("busy", http_status=503))
    broadcast = make(topic)
    services.broadcast_schedule(broadcast=broadcast)
    assert services.broadcast_launch(broadcast_id=broadcast.pk)
    services.broadcast_fanout(broadcast_id=broadcast.pk)
    sending.broadcast_send_range(broadcast_id=broadcast.pk, lo=0, hi=None)
    delivery = Delivery.objects.get(broadcast=broadcast)
    assert delivery.status == DeliveryStatus.QUEUED and delivery.authorized_by == event.seq  # claimed once, never taken
    consent_services.consent_revoke(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    time_machine.move_to(timezone.now() + timedelta(minutes=10))
    sending.broadcast_send_range(broadcast_id=broadcast.pk, lo=0, hi=None)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SKIPPED and delivery.skip_reason == SkipReason.NOT_CURRENT
    assert delivery.authorized_by is None and fake_provider.sent == []
