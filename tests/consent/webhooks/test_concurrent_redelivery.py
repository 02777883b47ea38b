"""Both copies of a webhook at the same moment, on separate connections: applied exactly once.

Runs on SQLite too, but matters on PostgreSQL (DATABASE_URL=postgres://...), where the
copies really run in parallel and the unique (channel, provider_message_id) index decides.
"""

import threading

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from consent import services
from consent.models import ConsentEvent, ConsentStatus, EventKind, Message, Source
from consent.signatures import twilio_signature, whatsapp_signature
from consent.verification import verify_chain
from messaging import lifecycle
from tests.prompts import deliver_prompts

from .conftest import TWILIO_TOKEN, WHATSAPP_SECRET
from .payloads import twilio_form, whatsapp_body

pytestmark = pytest.mark.django_db(transaction=True)

COPIES = 8


def post_at_once(requests):
    """Send every (path, body, content_type, headers) from its own thread, released together."""
    barrier = threading.Barrier(len(requests))
    responses, errors = [None] * len(requests), []

    def worker(index, path, body, content_type, headers):
        try:
            client = Client()
            barrier.wait(timeout=30)
            responses[index] = client.post(path, data=body, content_type=content_type, **headers)
        except Exception as exc:  # reported to the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, *request)) for i, request in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return responses


def twilio_copies(form):
    url = "http://testserver/webhooks/twilio/inbound/"
    headers = {"HTTP_X_TWILIO_SIGNATURE": twilio_signature(TWILIO_TOKEN, url, form)}
    return [("/webhooks/twilio/inbound/", form.urlencode(), "application/x-www-form-urlencoded", headers)] * COPIES


def active(topic, phone, channel):
    result = services.optin_request(phone=phone, topic=topic, channel=channel, source=Source.API, evidence={"ip": "192.0.2.1"})
    deliver_prompts(contact=result.consent.contact, topic=topic, channel=channel)  # YES confirms only prompts sent
    services.optin_confirm_by_reply(contact=result.consent.contact, channel=channel, source=Source.API)
    return result.consent


def test_simultaneous_stop_copies_revoke_once_and_reply_once(topic, webhook_settings):
    consent = active(topic, "+14155550123", "sms")
    events_before = ConsentEvent.objects.count()
    responses = post_at_once(twilio_copies(twilio_form("twilio_inbound_stop.txt")))
    assert [r.status_code for r in responses] == [200] * COPIES
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    assert ConsentEvent.objects.count() == events_before + 1
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert Message.objects.filter(kind=Message.Kind.STOP_REPLY).count() == 1
    assert verify_chain().ok


def test_simultaneous_join_copies_start_one_opt_in(topic, webhook_settings):
    form = twilio_form("twilio_inbound_stop.txt", Body="JOIN PROMO")
    responses = post_at_once(twilio_copies(form))
    assert [r.status_code for r in responses] == [200] * COPIES
    assert ConsentEvent.objects.filter(kind=EventKind.REQUESTED).count() == 1
    assert Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT).count() == 1
    assert topic.consents.get().status == ConsentStatus.PENDING


def test_simultaneous_whatsapp_yes_copies_confirm_once(topic, webhook_settings):
    from datetime import datetime, timezone

    import time_machine

    with time_machine.travel(datetime(2025, 11, 25, 18, 10, tzinfo=timezone.utc), tick=True):
        services.optin_request(phone="+33612345678", topic=topic, channel="whatsapp", source=Source.WEB_FORM,
                               evidence={"ip": "192.0.2.1"})
        body = whatsapp_body("whatsapp_text_yes.json")
        headers = {"HTTP_X_HUB_SIGNATURE_256": whatsapp_signature(WHATSAPP_SECRET, body)}
        responses = post_at_once([("/webhooks/whatsapp/", body, "application/json", headers)] * COPIES)
    assert [r.status_code for r in responses] == [200] * COPIES
    assert sum(r.json()["messages"] for r in responses) == 1
    assert sum(r.json()["duplicates"] for r in responses) == COPIES - 1
    assert ConsentEvent.objects.filter(kind=EventKind.CONFIRMED).count() == 1
    assert Message.objects.filter(kind=Message.Kind.CONFIRMED_REPLY).count() == 1


def test_a_stop_and_a_yes_from_one_person_at_once_both_apply(topic, webhook_settings):
    """Different messages of one contact serialise on the consent rows; none is lost."""
    consent = active(topic, "+14155550123", "sms")
    stop = twilio_copies(twilio_form("twilio_inbound_stop.txt"))[0]
    help_form = twilio_form("twilio_inbound_stop.txt", Body="HELP", MessageSid="SMhelp0001", SmsSid="SMhelp0001",
                            SmsMessageSid="SMhelp0001")
    help_ = twilio_copies(help_form)[0]
    responses = post_at_once([stop, help_])
    assert [r.status_code for r in responses] == [200, 200]
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 2
    assert Message.objects.filter(kind__in=[Message.Kind.STOP_REPLY, Message.Kind.HELP_REPLY]).count() == 2


def test_early_opt_out_copies_and_the_senders_answer_at_once_apply_once(topic, webhook_settings):
    """Copies of a status callback that came before the API's answer, racing each other and the
    sender recording that answer: one claim by our reference, one revocation, and the failure
    stays (the answer does not move it back to `sent`)."""


    consent = active(topic, "+14155550123", "sms")
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    # As the sender leaves it while the API call is out (the test client's send already ran).
    Message.objects.filter(pk=prompt.pk).update(status=Message.Status.SENDING, status_at=timezone.now(),
                                                provider_message_id=None, sent_at=None)
    sid = "SM21610aaaabbbbccccddddeeeeffff0000"  # the recorded fixture's
    path = f"/webhooks/twilio/status/?ref=message-{prompt.pk}"
    form = twilio_form("twilio_status_failed_21610.txt")
    headers = {"HTTP_X_TWILIO_SIGNATURE": twilio_signature(TWILIO_TOKEN, "http://testserver" + path, form)}
    events_before = ConsentEvent.objects.count()
    barrier = threading.Barrier(COPIES + 1)
    errors = []

    def sender_answers():
        try:
            barrier.wait(timeout=30)
            lifecycle.record_sent(Message, [(prompt.pk, sid)], timezone.now())
        except Exception as exc:  # reported to the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    responses = [None] * COPIES

    def callback(index):
        try:
            client = Client()
            barrier.wait(timeout=30)
            responses[index] = client.post(path, data=form.urlencode(), content_type="application/x-www-form-urlencoded",
                                           **headers)
        except Exception as exc:  # reported to the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender_answers)] + [threading.Thread(target=callback, args=(i,))
                                                           for i in range(COPIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert [r.status_code for r in responses] == [204] * COPIES
    prompt.refresh_from_db()
    assert (prompt.status, prompt.error_code, prompt.provider_message_id) == (Message.Status.FAILED, "21610", sid)
    assert prompt.sent_at is not None
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    assert ConsentEvent.objects.count() == events_before + 1
    assert verify_chain().ok
