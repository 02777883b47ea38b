"""Inbound intake and the applier: one durable write per message, applied once, in order per number."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from consent import services
from consent.intake import applier, records
from consent.intake.services import intake_record
from consent.models import Consent, ConsentStatus, EventKind, InboundReceipt, Message, Source
from consent.webhooks.parsers import InboundMessage
from tests.prompts import deliver_prompts

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"
OTHER = "+14155550124"
_counter = iter(range(1, 10**6))


def record(text, *, phone=PHONE, channel="sms", sid=None, **fields):
    message = InboundMessage(channel=channel, provider_message_id=sid or f"SMintake{next(_counter)}", sender=phone,
                             text=text, **fields)
    return records.record_of(message, provider="twilio", received_at=timezone.now())


def pending(topic, phone=PHONE):
    result = services.optin_request(phone=phone, topic=topic, channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    deliver_prompts(contact=result.consent.contact, topic=topic, channel="sms")
    return result.consent


def status(phone=PHONE):
    return Consent.objects.get(contact__phone=phone).status


# --- the record (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "intent", "revokes"), [
    ("STOP", "stop", True),
    ("  arrêt ", "stop", True),
    ("STOP PROMO", "none", True),  # a topic's stop: topics are not read at intake, it counts for the gate
    ("pls stop txting me", "none", True),  # a clear revocation in other words (rule 11)
    ("stop sending me the red one, I want blue", "none", True),  # starts with STOP: held until applied
    ("YES", "confirm", False),
    ("where is my order?", "none", False),
    ("HELP", "help", False),
])
def test_intake_reads_the_keyword_and_whether_it_revokes(text, intent, revokes):
    found = record(text)
    assert (found.intent, found.revokes) == (intent, revokes)


def test_a_twilio_opt_out_and_a_button_payload_revoke():
    assert record("", provider_opt_out="STOP").revokes
    assert record("Unsubscribe me", payload="STOP", kind="button").revokes
    assert not record("thanks", kind="media").revokes


def test_the_sender_is_stored_as_contacts_store_it_or_raw():
    assert record("hi", phone="+1 415 555 0123").sender == PHONE
    assert record("hi", phone="+99999999").sender == "+99999999"
    assert not records.is_number("+99999999") and records.is_number(PHONE)


def test_the_record_survives_its_json_shape():
    original = record("STOP", channel="whatsapp", profile_name="Ada", received_at=timezone.now())
    again = records.IntakeRecord.from_json(original.to_json())
    assert again == original
    assert again.inbound_message() == records.message_from_json(original.message)


# --- the write ------------------------------------------------------------------------------------


def test_intake_writes_once_per_provider_message_id(topic):
    first = record("STOP", sid="SMsame")
    assert intake_record(first) is True
    assert intake_record(record("YES", sid="SMsame")) is False  # a redelivery (even with other content)
    assert intake_record(record("STOP", sid="SMsame", channel="whatsapp")) is True  # another channel's id
    receipt = InboundReceipt.objects.get(channel="sms")
    assert (receipt.intent, receipt.revokes, receipt.applied_at, receipt.attempts) == ("stop", True, None, 0)
    assert receipt.message["text"] == "STOP"


# --- applying ----------------------------------------------------------------------------------


def test_yes_then_stop_ends_revoked_whatever_the_batch_size(topic):
    for size in (1, 2, 100):
        phone = f"+1415555{size:04d}"
        pending(topic, phone)
        intake_record(record("YES", phone=phone))
        intake_record(record("STOP", phone=phone))
        while applier.intake_apply_batch(limit=size).applied:
            pass
        assert status(phone) == ConsentStatus.REVOKED
        kinds = list(Consent.objects.get(contact__phone=phone).contact.events.order_by("seq").values_list("kind", flat=True))
        assert kinds[-2:] == [EventKind.CONFIRMED, EventKind.REVOKED]
    assert not InboundReceipt.objects.filter(applied_at__isnull=True).exists()


def test_a_batch_applies_one_row_per_number_and_the_next_row_in_the_next_batch(topic):
    pending(topic)
    pending(topic, OTHER)
    intake_record(record("YES"))
    intake_record(record("STOP"))
    intake_record(record("YES", phone=OTHER))
    batch = applier.intake_apply_batch()
    assert (batch.applied, batch.waiting) == (2, 1)  # the STOP reads what its YES wrote: next batch
    assert status() == ConsentStatus.ACTIVE and status(OTHER) == ConsentStatus.ACTIVE
    assert applier.intake_apply_batch().applied == 1
    assert status() == ConsentStatus.REVOKED


def test_each_row_is_applied_once_and_marked_with_its_effects(topic):
    pending(topic)
    intake_record(record("YES"))
    assert applier.intake_apply_pending() == 1
    assert applier.intake_apply_pending() == 0  # nothing twice
    receipt = InboundReceipt.objects.get()
    assert receipt.outcome == "applied" and receipt.applied_at is not None
    assert Message.objects.filter(kind=Message.Kind.CONFIRMED_REPLY).count() == 1
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1


def test_a_message_already_stored_is_applied_as_a_duplicate(topic):
    from consent import inbound

    pending(topic)
    message = record("YES", sid="SMold").inbound_message()
    inbound.inbound_message_receive(message=message, provider="twilio")  # applied before intake existed
    intake_record(record("YES", sid="SMold"))
    applier.intake_apply_pending()
    assert InboundReceipt.objects.get().outcome == "duplicate"
    assert Message.objects.filter(kind=Message.Kind.CONFIRMED_REPLY).count() == 1


def test_a_sender_that_is_no_number_is_marked_ignored(topic):
    intake_record(record("STOP", phone="+99999999"))
    applier.intake_apply_pending()
    assert InboundReceipt.objects.get().outcome == "ignored"


def test_a_failing_row_waits_with_the_later_rows_of_its_number_and_no_other(topic, monkeypatch):
    pending(topic)
    pending(topic, OTHER)
    intake_record(record("YES"))
    intake_record(record("STOP"))
    intake_record(record("YES", phone=OTHER))
    real = applier.inbound_message_receive

    def flaky(*, message, **kwargs):
        if message.sender == PHONE and message.text == "YES":
            raise RuntimeError("database hiccup")
        return real(message=message, **kwargs)

    monkeypatch.setattr(applier, "inbound_message_receive", flaky)
    batch = applier.intake_apply_batch()
    assert (batch.applied, batch.failed, batch.waiting) == (1, 1, 1)
    assert status(OTHER) == ConsentStatus.ACTIVE and status(PHONE) == ConsentStatus.PENDING  # the STOP waited
    failed = InboundReceipt.objects.filter(applied_at__isnull=True).order_by("id").first()
    assert failed.attempts == 1 and "database hiccup" in failed.last_error
    monkeypatch.setattr(applier, "inbound_message_receive", real)
    assert applier.intake_apply_pending() == 2
    assert status(PHONE) == ConsentStatus.REVOKED


def test_a_join_in_a_batch_that_rolled_back_counts_once_towards_the_number_limits(topic, monkeypatch, settings):
    """The batch rolls back and its rows are applied again one by one: the limits' counters, outside the
    database, are not rolled back, and the JOIN's prompt must not count twice (here: be refused)."""
    from django.core.cache import caches

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "intake-join-once"}}
    settings.OPTIN_MAX_PER_NUMBER_PER_HOUR = 1
    caches["default"].clear()
    intake_record(record("JOIN PROMO"))
    intake_record(record("hello", phone=OTHER))
    real = applier.inbound_message_receive

    def flaky(*, message, **kwargs):
        if message.sender == OTHER:
            raise RuntimeError("database hiccup")
        return real(message=message, **kwargs)

    monkeypatch.setattr(applier, "inbound_message_receive", flaky)
    batch = applier.intake_apply_batch()
    assert (batch.applied, batch.failed) == (1, 1)
    assert status() == ConsentStatus.PENDING
    assert Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT, contact__phone=PHONE).count() == 1


def test_effects_take_the_instant_the_message_was_received(topic):
    consent = pending(topic)
    received = timezone.now()
    intake_record(record("YES"))
    with time_machine.travel(received + timedelta(minutes=3)):
        applier.intake_apply_pending()
    consent.refresh_from_db()
    assert abs((consent.confirmed_at - received).total_seconds()) < 1


def test_records_from_elsewhere_are_recorded_once_then_applied_in_order(topic):
    pending(topic)
    yes, stop = record("YES"), record("STOP")
    assert applier.intake_apply_records([yes, stop, yes]) == 2
    assert status() == ConsentStatus.REVOKED
    assert InboundReceipt.objects.count() == 2


# --- the webhook's path ------------------------------------------------------------------------


@pytest.fixture
def post_sms(client, settings):
    """post_sms(text, sid): a signed Twilio inbound SMS from PHONE."""
    from django.http import QueryDict

    from consent.signatures import twilio_signature

    settings.TWILIO_AUTH_TOKEN = "intake-test-token"

    def post(text, sid):
        form = QueryDict(mutable=True)
        form.update({"MessageSid": sid, "From": PHONE, "To": "+15005550006", "Body": text, "NumMedia": "0"})
        path = "/webhooks/twilio/inbound/"
        signature = twilio_signature("intake-test-token", settings.PUBLIC_BASE_URL + path, form)
        return client.post(path, data=form.urlencode(), content_type="application/x-www-form-urlencoded",
                           HTTP_X_TWILIO_SIGNATURE=signature)

    return post


def test_a_webhook_is_answered_once_recorded_and_one_apply_task_serves_a_burst(topic, post_sms, monkeypatch):
    from consent.intake import services as intake_services
    from consent.tasks import inbound_apply_task

    queued = []
    monkeypatch.setattr(intake_services, "enqueue", lambda name, **options: queued.append(name))
    pending(topic)
    assert post_sms("YES", "SMburst1").status_code == 200
    assert post_sms("STOP", "SMburst2").status_code == 200
    assert post_sms("STOP", "SMburst2").status_code == 200  # a redelivery
    assert queued == [intake_services.APPLY_TASK]  # one task for the burst: the key holds until it starts
    assert InboundReceipt.objects.filter(applied_at__isnull=True).count() == 2
    assert status() == ConsentStatus.PENDING  # answered before any effect
    assert inbound_apply_task() == 2
    assert status() == ConsentStatus.REVOKED
    assert Message.objects.filter(kind=Message.Kind.STOP_REPLY).count() == 1
    assert post_sms("START", "SMburst3").status_code == 200
    assert len(queued) == 2  # the task started: the next message queues the next one


@pytest.mark.parametrize("gather,countdown", [(0.2, 0.2), (0, None)])
def test_the_apply_task_is_queued_to_start_after_the_gathering_delay(topic, post_sms, monkeypatch, settings,
                                                                      gather, countdown):
    from consent.intake import services as intake_services

    settings.INBOUND_APPLY_GATHER_SECONDS = gather
    queued = []
    monkeypatch.setattr(intake_services, "enqueue", lambda name, **options: queued.append((name, options)))
    pending(topic)
    assert post_sms("STOP", "SMgather1").status_code == 200
    assert post_sms("STOP", "SMgather2").status_code == 200
    assert queued == [(intake_services.APPLY_TASK, {"retry": False, "countdown": countdown})]


def test_a_broker_outage_still_answers_200_and_beat_applies_later(topic, post_sms, monkeypatch):
    from consent.intake import services as intake_services
    from consent.tasks import inbound_apply_task

    def down(name, **options):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(intake_services, "enqueue", down)
    pending(topic)
    assert post_sms("STOP", "SMnobroker").status_code == 200
    assert status() == ConsentStatus.PENDING
    inbound_apply_task()  # beat's run
    assert status() == ConsentStatus.REVOKED


# --- two appliers at once (PostgreSQL row locks) ----------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("not __import__('django.db').db.connection.vendor == 'postgresql'", reason="row locks: PostgreSQL")
def test_two_concurrent_appliers_keep_each_numbers_order(topic, monkeypatch):
    """Applier A holds the YES of number 0 inside its transaction (its ledger append made, not committed);
    B runs meanwhile over every row: it must leave numbers 0-2 (A's) and apply the YES of 3-5, and it is
    not held up by A (the ledger's head is locked only as a batch ends); the next batches apply the
    STOPs: every number ends revoked, each row once."""
    from django.db import connection

    numbers = [f"+1415556{i:04d}" for i in range(6)]
    for phone in numbers:
        pending(topic, phone)
    for phone in numbers:  # ids: YES of every number, then STOP of every number
        intake_record(record("YES", phone=phone))
    for phone in numbers:
        intake_record(record("STOP", phone=phone))
    a_inside, release_a = threading.Event(), threading.Event()
    real = applier.inbound_message_receive

    def held(*, message, **kwargs):
        result = real(message=message, **kwargs)
        if threading.current_thread().name == "A" and not a_inside.is_set():
            a_inside.set()
            release_a.wait(timeout=10)
        return result

    monkeypatch.setattr(applier, "inbound_message_receive", held)
    results, errors = {}, []

    def run(name, limit):
        try:
            results[name] = applier.intake_apply_batch(limit=limit)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    a = threading.Thread(name="A", target=run, args=("A", 3))  # YES of numbers 0-2
    b = threading.Thread(name="B", target=run, args=("B", 100))  # everything else
    a.start()
    assert a_inside.wait(timeout=10)
    b.start()
    # B applies the YES of numbers 3-5 and commits while A is still inside; the STOPs it leaves.
    b.join(timeout=10)
    assert not b.is_alive(), "the second applier waited for the first"
    assert results["B"].applied == 3
    release_a.set()
    a.join(30), b.join(30)
    assert errors == []
    assert results["B"].waiting >= 2  # number 0's YES (A's) and its STOP behind it
    applied_later = applier.intake_apply_pending()
    assert results["A"].applied + results["B"].applied + applied_later == 12  # each row once
    assert InboundReceipt.objects.filter(applied_at__isnull=False, outcome="applied").count() == 12
    assert {status(phone) for phone in numbers} == {ConsentStatus.REVOKED}
    for phone in numbers:
        kinds = list(Consent.objects.get(contact__phone=phone).contact.events.order_by("seq").values_list("kind", flat=True))
        assert kinds[-2:] == [EventKind.CONFIRMED, EventKind.REVOKED]


def test_applied_receipts_are_pruned_after_thirty_days_and_a_late_redelivery_is_a_duplicate(topic):
    from consent.intake.services import intake_receipts_prune

    pending(topic)
    intake_record(record("YES", sid="SMlate"))
    applier.intake_apply_pending()
    intake_record(record("STOP"))  # not applied: never pruned
    assert intake_receipts_prune(now=timezone.now() + timedelta(days=29)) == 0
    assert intake_receipts_prune(now=timezone.now() + timedelta(days=31)) == 1
    assert InboundReceipt.objects.get().applied_at is None
    intake_record(record("YES", sid="SMlate"))
    applier.intake_apply_pending()
    assert InboundReceipt.objects.get(provider_message_id="SMlate").outcome == "duplicate"
    assert Message.objects.filter(kind=Message.Kind.CONFIRMED_REPLY).count() == 1


def test_erasure_deletes_the_applied_receipts_of_the_number(topic):
    from consent.erasure import contact_erase

    consent = pending(topic)
    intake_record(record("YES"))
    applier.intake_apply_pending()
    contact_erase(contact=consent.contact, actor="admin")
    assert not InboundReceipt.objects.exists()
