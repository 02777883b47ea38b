"""Twilio webhooks end to end: signature, TwiML, keywords applied once, status callbacks."""

import pytest

from consent import services
from consent.models import ConsentEvent, ConsentStatus, EventKind, Message, Source

from .payloads import twilio_form

pytestmark = pytest.mark.django_db

INBOUND = "/webhooks/twilio/inbound/"
STATUS = "/webhooks/twilio/status/"
PHONE = "+14155550123"


def inbound_form(body, sid="SM00000000000000000000000000000001", phone=PHONE, **changes):
    return twilio_form("twilio_inbound_stop.txt", Body=body, MessageSid=sid, SmsMessageSid=sid, SmsSid=sid,
                       From=phone, **changes)


def active_consent(topic, phone=PHONE, channel="sms"):
    result = services.optin_request(phone=phone, topic=topic, channel=channel, source=Source.API, evidence={"ip": "192.0.2.1"})
    services.optin_confirm_by_reply(contact=result.consent.contact, channel=channel, source=Source.SMS_KEYWORD)
    result.consent.refresh_from_db()
    return result.consent


def test_stop_revokes_and_answers_empty_twiml_and_one_confirmation(topic, twilio_post, run_on_commit):
    consent = active_consent(topic)
    with run_on_commit():
        response = twilio_post(INBOUND, twilio_form("twilio_inbound_stop.txt"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode().endswith("<Response/>")
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    event = ConsentEvent.objects.filter(kind=EventKind.REVOKED).get()
    assert event.source == Source.SMS_KEYWORD
    assert event.evidence["provider_message_id"] == "SM4f1a2b3c4d5e6f708192a3b4c5d6e7f8"
    assert event.evidence["inbound_text"] == "Stop."
    reply = Message.objects.get(kind=Message.Kind.STOP_REPLY)
    assert reply.status == Message.Status.SENT
    assert "unsubscribed" in reply.body


def test_redelivered_stop_changes_nothing_twice(topic, twilio_post, run_on_commit):
    active_consent(topic)
    with run_on_commit():
        first = twilio_post(INBOUND, twilio_form("twilio_inbound_stop.txt"))
        events = ConsentEvent.objects.count()
        second = twilio_post(INBOUND, twilio_form("twilio_inbound_stop.txt"))
    assert first.status_code == second.status_code == 200
    assert ConsentEvent.objects.count() == events
    assert Message.objects.filter(kind=Message.Kind.STOP_REPLY).count() == 1
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1


@pytest.mark.parametrize(
    "signature",
    ["", "bm90IGEgc2lnbmF0dXJl", None],
)
def test_bad_or_missing_signature_is_403_and_changes_nothing(topic, client, webhook_settings, signature):
    consent = active_consent(topic)
    headers = {} if signature is None else {"HTTP_X_TWILIO_SIGNATURE": signature}
    response = client.post(INBOUND, data=twilio_form("twilio_inbound_stop.txt").urlencode(),
                           content_type="application/x-www-form-urlencoded", **headers)
    assert response.status_code == 403
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert not Message.objects.filter(direction=Message.Direction.INBOUND).exists()


def test_signature_of_another_url_or_token_is_403(topic, twilio_post):
    form = twilio_form("twilio_inbound_stop.txt")
    from consent.signatures import twilio_signature

    other_url = twilio_signature("test-twilio-auth-token", "http://testserver/webhooks/twilio/status/", form)
    assert twilio_post(INBOUND, form, signature=other_url).status_code == 403
    assert twilio_post(INBOUND, form, token="wrong").status_code == 403


def test_signed_query_string_is_part_of_the_url(topic, twilio_post):
    form = twilio_form("twilio_inbound_customer_care.txt")
    assert twilio_post(INBOUND + "?tenant=acme&x=%C3%A9", form).status_code == 200


def test_sha256_signature_settings_header(topic, twilio_post):
    from consent.signatures import twilio_signature

    form = twilio_form("twilio_inbound_customer_care.txt")
    signature = twilio_signature("test-twilio-auth-token", "http://testserver" + INBOUND, form, algorithm="HMAC_SHA256")
    response = twilio_post(INBOUND, form, signature=signature,
                           HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS="key=webhooks_sharedkey_1,algorithm=HMAC_SHA256")
    assert response.status_code == 200
    assert twilio_post(INBOUND, form, signature=signature).status_code == 403


def test_no_auth_token_configured_rejects_everything(topic, twilio_post, settings):
    form = twilio_form("twilio_inbound_stop.txt")
    settings.TWILIO_AUTH_TOKEN = ""
    assert twilio_post(INBOUND, form, token="").status_code == 403


def test_get_is_not_allowed(client):
    assert client.get(INBOUND).status_code == 405


@pytest.mark.parametrize(
    "changes",
    [{"From": None}, {"From": "hello"}, {"MessageSid": None, "SmsMessageSid": None, "SmsSid": None}],
)
def test_malformed_signed_form_is_400_without_change(topic, twilio_post, changes):
    consent = active_consent(topic)
    response = twilio_post(INBOUND, twilio_form("twilio_inbound_stop.txt", **changes))
    assert response.status_code == 400
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


def test_oversized_body_is_413(twilio_post):
    form = inbound_form("x" * 300_000)
    assert twilio_post(INBOUND, form).status_code == 413


def test_non_form_body_is_not_a_500(client, webhook_settings):
    response = client.post(INBOUND, data=b'{"Body": "STOP"}', content_type="application/json",
                           HTTP_X_TWILIO_SIGNATURE="x")
    assert response.status_code == 403


def test_unknown_sender_that_is_not_a_number_is_ignored_with_200(topic, twilio_post):
    response = twilio_post(INBOUND, inbound_form("STOP", phone="+999999999"))
    assert response.status_code == 200
    assert not Message.objects.exists()


def test_unknown_sender_texting_stop_gets_one_confirmation(topic, twilio_post, run_on_commit):
    with run_on_commit():
        assert twilio_post(INBOUND, inbound_form("STOP", phone="+14155550177")).status_code == 200
    assert Message.objects.filter(kind=Message.Kind.STOP_REPLY).count() == 1
    assert not ConsentEvent.objects.exists()


def test_join_then_yes_by_sms(topic, twilio_post, run_on_commit):
    with run_on_commit():
        twilio_post(INBOUND, inbound_form("Join promo", sid="SM1"))
    consent = topic.consents.get()
    assert consent.status == ConsentStatus.PENDING
    assert consent.source == Source.SMS_KEYWORD
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    assert "YES" in prompt.body and "/optin/confirm/" in prompt.body
    with run_on_commit():
        twilio_post(INBOUND, inbound_form("oui !", sid="SM2"))
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert Message.objects.filter(kind=Message.Kind.CONFIRMED_REPLY).count() == 1


def test_customer_care_text_is_stored_and_changes_nothing(topic, twilio_post, run_on_commit):
    consent = active_consent(topic)
    events = ConsentEvent.objects.count()
    with run_on_commit():
        twilio_post(INBOUND, twilio_form("twilio_inbound_customer_care.txt"))
    stored = Message.objects.get(direction=Message.Direction.INBOUND)
    assert stored.body == "stop sending me the red one please"
    assert stored.kind == Message.Kind.INBOUND
    assert ConsentEvent.objects.count() == events
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert not Message.objects.filter(direction=Message.Direction.OUTBOUND).exclude(kind=Message.Kind.CONFIRMATION_PROMPT).exists()


def test_twilio_advanced_opt_out_revokes_without_a_second_confirmation(topic, twilio_post, run_on_commit):
    consent = active_consent(topic, phone="+12125550142")
    with run_on_commit():
        twilio_post(INBOUND, twilio_form("twilio_inbound_advanced_optout.txt"))
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    assert not Message.objects.filter(kind=Message.Kind.STOP_REPLY).exists()


# status callbacks ------------------------------------------------------------------------


def sent_prompt(topic, run_on_commit, phone=PHONE):
    with run_on_commit():
        services.optin_request(phone=phone, topic=topic, channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    return Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)


def test_status_callbacks_move_the_message_forward_only(topic, twilio_post, run_on_commit):
    prompt = sent_prompt(topic, run_on_commit)
    sid = prompt.provider_message_id
    assert twilio_post(STATUS, twilio_form("twilio_status_delivered.txt", MessageSid=sid)).status_code == 204
    prompt.refresh_from_db()
    assert prompt.status == Message.Status.DELIVERED
    twilio_post(STATUS, twilio_form("twilio_status_sent.txt", MessageSid=sid))  # late, out of order
    prompt.refresh_from_db()
    assert prompt.status == Message.Status.DELIVERED


def test_status_for_an_unknown_message_is_accepted(twilio_post):
    assert twilio_post(STATUS, twilio_form("twilio_status_delivered.txt")).status_code == 204


def mark_sent(message, sid):

    from django.utils import timezone

    Message.objects.filter(pk=message.pk).update(provider_message_id=sid, status=Message.Status.SENT,
                                                  sent_at=timezone.now())
    message.refresh_from_db()
    return message


def test_opt_out_error_21610_revokes_with_source_provider(topic, twilio_post, run_on_commit):
    consent = active_consent(topic)
    prompt = mark_sent(Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT).get(), "SM21610prompt")
    response = twilio_post(STATUS, twilio_form("twilio_status_failed_21610.txt", MessageSid=prompt.provider_message_id))
    assert response.status_code == 204
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    event = ConsentEvent.objects.get(kind=EventKind.REVOKED)
    assert event.source == Source.PROVIDER
    assert event.evidence["provider_error_code"] == "21610"
    prompt.refresh_from_db()
    assert (prompt.status, prompt.error_code) == (Message.Status.FAILED, "21610")
    # Redelivered: nothing more.
    twilio_post(STATUS, twilio_form("twilio_status_failed_21610.txt", MessageSid=prompt.provider_message_id))
    assert ConsentEvent.objects.filter(kind=EventKind.REVOKED).count() == 1


def test_opt_out_error_for_a_broadcast_message_finds_the_contact_by_number(topic, twilio_post):
    consent = active_consent(topic)
    twilio_post(STATUS, twilio_form("twilio_status_failed_21610.txt"))
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED


def test_late_opt_out_error_does_not_undo_a_newer_consent(topic, twilio_post, run_on_commit):
    consent = active_consent(topic)
    prompt = mark_sent(Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT), "SMold")
    Message.objects.filter(pk=prompt.pk).update(sent_at=prompt.sent_at.replace(year=2020))
    twilio_post(STATUS, twilio_form("twilio_status_failed_21610.txt", MessageSid=prompt.provider_message_id))
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


def test_invalid_number_error_suppresses(topic, twilio_post):
    from consent.models import Suppression

    consent = active_consent(topic)
    twilio_post(STATUS, twilio_form("twilio_status_failed_21610.txt", ErrorCode="21211"))
    assert Suppression.objects.filter(phone_pseudonym=consent.contact.phone_pseudonym, reason="invalid_number").exists()
    twilio_post(STATUS, twilio_form("twilio_status_failed_21610.txt", ErrorCode="21211"))
    assert ConsentEvent.objects.filter(kind=EventKind.SUPPRESSED).count() == 1


def test_status_signal_reaches_subscribers(topic, twilio_post):
    from consent.webhooks.signals import provider_status_received

    received = []

    def receiver(sender, update, contact, message, **kwargs):
        received.append((sender, update.provider_message_id, update.status, contact))

    provider_status_received.connect(receiver)
    try:
        active_consent(topic)
        twilio_post(STATUS, twilio_form("twilio_status_delivered.txt"))
    finally:
        provider_status_received.disconnect(receiver)
    assert received == [("twilio", "SM1234567890abcdef1234567890abcdef", "delivered", topic.consents.get().contact)]


def test_a_failing_subscriber_rolls_back_and_asks_for_a_retry(topic, twilio_post):
    from consent.webhooks.signals import provider_status_received

    def receiver(**kwargs):
        raise RuntimeError("boom")

    consent = active_consent(topic)
    provider_status_received.connect(receiver)
    try:
        response = twilio_post(STATUS, twilio_form("twilio_status_failed_21610.txt"))
    finally:
        provider_status_received.disconnect(receiver)
    assert response.status_code == 503
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


@pytest.mark.parametrize("changes", [{"MessageStatus": "weird", "SmsStatus": "weird"}, {"MessageSid": None, "SmsSid": None}])
def test_malformed_status_is_400(twilio_post, changes):
    assert twilio_post(STATUS, twilio_form("twilio_status_delivered.txt", **changes)).status_code == 400


def test_body_cap_is_configurable(twilio_post, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    assert twilio_post(INBOUND, twilio_form("twilio_inbound_stop.txt")).status_code == 413


def test_a_content_length_that_is_no_number_is_refused(client, webhook_settings):
    response = client.post(INBOUND, data="Body=STOP", content_type="application/x-www-form-urlencoded",
                           CONTENT_LENGTH="lots", HTTP_X_TWILIO_SIGNATURE="x")
    assert response.status_code == 413
