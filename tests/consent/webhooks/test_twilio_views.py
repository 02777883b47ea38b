"""Twilio webhooks end to end: signature, TwiML, keywords applied once, status callbacks."""

import pytest
from django.utils import timezone

from consent import services
from consent.models import ConsentEvent, ConsentStatus, EventKind, Message, Source
from consent.signatures import twilio_signature
from consent.webhooks import registry
from messaging import lifecycle
from tests.prompts import deliver_prompts

from .conftest import TWILIO_TOKEN
from .payloads import twilio_form

pytestmark = pytest.mark.django_db

INBOUND = "/webhooks/twilio/inbound/"
STATUS = "/webhooks/twilio/status/"
PHONE = "+14155550123"
TEN_MB = 10 * 1024 * 1024


def inbound_form(body, sid="SM00000000000000000000000000000001", phone=PHONE, **changes):
    return twilio_form("twilio_inbound_stop.txt", Body=body, MessageSid=sid, SmsMessageSid=sid, SmsSid=sid,
                       From=phone, **changes)


def active_consent(topic, phone=PHONE, channel="sms"):
    result = services.optin_request(phone=phone, topic=topic, channel=channel, source=Source.API, evidence={"ip": "192.0.2.1"})
    deliver_prompts(contact=result.consent.contact, topic=topic, channel=channel)  # YES confirms only prompts handed to the provider
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
    assert response["Content-Length"] == str(len(response.content))
    assert "X-Frame-Options" not in response  # answered by the webhook lane (config/webhook_lane.py)
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    event = ConsentEvent.objects.filter(kind=EventKind.REVOKED).get()
    assert event.source == Source.SMS_KEYWORD
    assert event.evidence["provider_message_id"] == "SM4f1a2b3c4d5e6f708192a3b4c5d6e7f8"
    assert event.evidence["inbound_text"] == "Stop."
    reply = Message.objects.get(kind=Message.Kind.STOP_REPLY)
    assert reply.status == Message.Status.SENT
    assert "unsubscribed" in reply.body


@pytest.mark.parametrize("redeliveries", [1, 5])
def test_redelivered_stop_changes_nothing_twice(topic, twilio_post, run_on_commit, redeliveries):
    active_consent(topic)
    with run_on_commit():
        first = twilio_post(INBOUND, twilio_form("twilio_inbound_stop.txt"))
        events = ConsentEvent.objects.count()
        again = [twilio_post(INBOUND, twilio_form("twilio_inbound_stop.txt")) for _ in range(redeliveries)]
    assert {first.status_code, *(r.status_code for r in again)} == {200}
    assert ConsentEvent.objects.count() == events
    assert Message.objects.filter(kind=Message.Kind.STOP_REPLY).count() == 1
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1


# The signature sent for a form (None: no header at all).
BAD_SIGNATURES = {
    "missing": lambda form: None,
    "empty": lambda form: "",
    "garbage": lambda form: "bm90IGEgc2lnbmF0dXJl",
    "wrong token": lambda form: twilio_signature("0" * 32, "http://testserver" + INBOUND, form),
    "other path": lambda form: twilio_signature(TWILIO_TOKEN, "http://testserver" + STATUS, form),
    "other host": lambda form: twilio_signature(TWILIO_TOKEN, "https://evil.example" + INBOUND, form),
    "sha256 of the same": lambda form: "c2hhMjU2" * 5,
    "very long": lambda form: "A" * 100_000,
    "non-ascii": lambda form: "sïgnatüre",
}


@pytest.mark.parametrize("name", sorted(BAD_SIGNATURES))
def test_bad_or_missing_signature_is_403_and_changes_nothing(topic, client, webhook_settings, name):
    consent = active_consent(topic)
    events = ConsentEvent.objects.count()
    form = twilio_form("twilio_inbound_stop.txt")
    signature = BAD_SIGNATURES[name](form)
    headers = {} if signature is None else {"HTTP_X_TWILIO_SIGNATURE": signature}
    response = client.post(INBOUND, data=form.urlencode(), content_type="application/x-www-form-urlencoded", **headers)
    assert response.status_code == 403
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert ConsentEvent.objects.count() == events
    assert not Message.objects.filter(direction=Message.Direction.INBOUND).exists()


def test_signature_replayed_on_a_changed_body_is_403(topic, twilio_post):
    consent = active_consent(topic)
    stolen = twilio_signature(TWILIO_TOKEN, "http://testserver" + INBOUND, inbound_form("hello"))
    assert twilio_post(INBOUND, inbound_form("STOP"), signature=stolen).status_code == 403
    assert twilio_post(INBOUND, inbound_form("hello", phone="+14155550999"), signature=stolen).status_code == 403
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert not Message.objects.filter(direction=Message.Direction.INBOUND).exists()


def test_signature_replayed_on_the_status_url_is_403(topic, twilio_post):
    form = twilio_form("twilio_inbound_stop.txt")
    stolen = twilio_signature(TWILIO_TOKEN, "http://testserver" + INBOUND, form)
    assert twilio_post(STATUS, form, signature=stolen).status_code == 403


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
    [{"From": None}, {"From": "hello"}, {"MessageSid": None, "SmsMessageSid": None, "SmsSid": None},
     # Twilio never repeats a field: a form that does is ambiguous and must not change consent.
     {"Body": ["hello", "STOP"]}, {"From": ["+14155550999", PHONE]},
     {"MessageSid": ["SM" + "b" * 32, "SM4f1a2b3c4d5e6f708192a3b4c5d6e7f8"]}],
    ids=["no From", "From not a number", "no sid", "Body repeated", "From repeated", "MessageSid repeated"],
)
def test_malformed_signed_form_is_400_without_change(topic, twilio_post, changes):
    consent = active_consent(topic)
    response = twilio_post(INBOUND, twilio_form("twilio_inbound_stop.txt", **changes))
    assert response.status_code == 400
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


@pytest.mark.parametrize("size", [300_000, TEN_MB])
def test_oversized_body_is_413(topic, twilio_post, size):
    consent = active_consent(topic)
    assert twilio_post(INBOUND, inbound_form("x" * size)).status_code == 413
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


def test_oversized_body_with_a_lying_content_length_never_applies(topic, client, webhook_settings):
    consent = active_consent(topic)
    form = inbound_form("STOP")
    body = form.urlencode().encode() + b"&Padding=" + b"x" * TEN_MB
    response = client.generic("POST", INBOUND, body, content_type="application/x-www-form-urlencoded",
                              CONTENT_LENGTH="100",
                              HTTP_X_TWILIO_SIGNATURE=twilio_signature(TWILIO_TOKEN, "http://testserver" + INBOUND, form))
    assert 400 <= response.status_code < 500
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


def test_broken_utf8_is_refused_or_harmless(topic, client, webhook_settings):
    consent = active_consent(topic)
    body = inbound_form("STOP").urlencode().encode().replace(b"Body=STOP", b"Body=ST%FF%FEOP%C3%28")
    response = client.generic("POST", INBOUND, body, content_type="application/x-www-form-urlencoded",
                              HTTP_X_TWILIO_SIGNATURE="whatever")
    assert response.status_code in (400, 403)
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


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


@pytest.mark.parametrize("form,stored_body", [
    (lambda: twilio_form("twilio_inbound_customer_care.txt"), "stop sending me the red one please"),
    # PostgreSQL cannot store NUL; control characters are dropped too.
    (lambda: inbound_form("hel\x00lo\x07 there", sid="SM" + "c" * 32), "hello there"),
], ids=["recorded", "NUL and control characters"])
def test_customer_care_text_is_stored_and_changes_nothing(topic, twilio_post, run_on_commit, form, stored_body):
    consent = active_consent(topic)
    events = ConsentEvent.objects.count()
    with run_on_commit():
        assert twilio_post(INBOUND, form()).status_code == 200
    stored = Message.objects.get(direction=Message.Direction.INBOUND)
    assert stored.body == stored_body
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


def test_status_reaches_registered_handlers(topic, twilio_post):
    received = []

    def apply(*, provider, update, contact, message):
        received.append((provider, update.provider_message_id, update.status, contact))

    registry.status_handler_register("test", registry.StatusHandler(find=lambda update: None, apply=apply))
    try:
        active_consent(topic)
        twilio_post(STATUS, twilio_form("twilio_status_delivered.txt"))
    finally:
        registry.status_handler_unregister("test")
    assert received == [("twilio", "SM1234567890abcdef1234567890abcdef", "delivered", topic.consents.get().contact)]


def test_a_failing_handler_rolls_back_and_asks_for_a_retry(topic, twilio_post):
    def apply(**kwargs):
        raise RuntimeError("boom")

    consent = active_consent(topic)
    registry.status_handler_register("test", registry.StatusHandler(find=lambda update: None, apply=apply))
    try:
        response = twilio_post(STATUS, twilio_form("twilio_status_failed_21610.txt"))
    finally:
        registry.status_handler_unregister("test")
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


# status callbacks that come before the provider's answer is recorded -------------------------

SID = "SM1234567890abcdef1234567890abcdef"  # the MessageSid of the recorded status fixtures


def queued_prompt(topic, phone=PHONE):
    """A confirmation prompt queued for sending (its send task not run)."""
    services.optin_request(phone=phone, topic=topic, channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    return Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT, contact__phone=phone)


def handed_over(message):
    """The message as the sender leaves it while the provider's API call is out: `sending`, no provider id."""
    from django.utils import timezone

    Message.objects.filter(pk=message.pk).update(status=Message.Status.SENDING, status_at=timezone.now(),
                                                 provider_message_id=None, sent_at=None)
    message.refresh_from_db()
    return message


def path_of(url, settings):
    assert url.startswith(settings.PUBLIC_BASE_URL)
    return url[len(settings.PUBLIC_BASE_URL):]


class CallbackFirst:
    """A provider whose status callback arrives before its API answer is read (as Twilio's may)."""

    name = "twilio"

    def __init__(self, post, settings, fixture, sid=SID, **changes):
        self.post, self.settings, self.fixture, self.sid, self.changes = post, settings, fixture, sid, changes
        self.responses, self.seen = [], []

    def send(self, message):
        from messaging.providers import SendResult

        self.responses.append(self.post(path_of(message.status_callback, self.settings),
                                        twilio_form(self.fixture, MessageSid=self.sid, SmsSid=self.sid, **self.changes)))
        self.seen.append(Message.objects.values("status", "provider_message_id").get(contact__phone=message.to,
                                                                                      direction="out"))
        return SendResult(provider_message_id=self.sid, status="queued")


def test_early_delivered_callback_finds_the_message_by_our_reference_and_the_answer_keeps_it(
        topic, twilio_post, settings, monkeypatch):
    from consent import messaging

    prompt = queued_prompt(topic)
    provider = CallbackFirst(twilio_post, settings, "twilio_status_delivered.txt")
    monkeypatch.setattr(messaging, "get_provider", lambda channel: provider)
    assert messaging.message_deliver(message_id=prompt.pk) == "sent"
    assert [r.status_code for r in provider.responses] == [204]
    # The callback found the message through ?ref=message-<pk> and recorded the provider id ...
    assert provider.seen == [{"status": Message.Status.DELIVERED, "provider_message_id": SID}]
    # ... and recording the API's answer afterwards did not move it back to `sent`.
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id) == (Message.Status.DELIVERED, SID)
    assert prompt.sent_at is not None
    assert ConsentEvent.objects.filter(kind=EventKind.CONFIRMATION_SENT).count() == 1
    # Later callbacks find it by the provider id as usual.
    twilio_post(STATUS, twilio_form("twilio_status_sent.txt"))
    prompt.refresh_from_db()
    assert prompt.status == Message.Status.DELIVERED


def test_the_status_callback_url_carries_our_reference_and_is_signed_with_it(topic, twilio_post, settings,
                                                                           monkeypatch):
    from consent import messaging

    prompt = queued_prompt(topic)
    provider = CallbackFirst(twilio_post, settings, "twilio_status_delivered.txt")
    monkeypatch.setattr(messaging, "get_provider", lambda channel: provider)
    messaging.message_deliver(message_id=prompt.pk)
    # Twilio signs the URL it was given, query included: a signature over the bare path is refused.
    path = f"{STATUS}?ref=message-{prompt.pk}"
    bare = twilio_signature(TWILIO_TOKEN, settings.PUBLIC_BASE_URL + STATUS, twilio_form("twilio_status_sent.txt"))
    assert twilio_post(path, twilio_form("twilio_status_sent.txt"), signature=bare).status_code == 403
    assert twilio_post(path, twilio_form("twilio_status_sent.txt")).status_code == 204


def test_early_opt_out_error_revokes_the_messages_own_contact(topic, twilio_post, settings, monkeypatch):
    """21610 before the answer: no number in the callback to go by, only our reference."""

    consent = active_consent(topic)
    stranger = active_consent(topic, phone="+14155550177")
    prompt = handed_over(Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT, contact=consent.contact))
    form = twilio_form("twilio_status_failed_21610.txt", MessageSid=SID, SmsSid=SID, To=None)
    assert twilio_post(f"{STATUS}?ref=message-{prompt.pk}", form).status_code == 204
    consent.refresh_from_db()
    stranger.refresh_from_db()
    assert (consent.status, consent.source) == (ConsentStatus.REVOKED, Source.PROVIDER)
    assert stranger.status == ConsentStatus.ACTIVE
    event = ConsentEvent.objects.get(kind=EventKind.REVOKED)
    assert (event.source, event.evidence["provider_error_code"], event.evidence["message_id"]) == (
        Source.PROVIDER, "21610", prompt.pk)
    prompt.refresh_from_db()
    assert (prompt.status, prompt.error_code, prompt.provider_message_id) == (Message.Status.FAILED, "21610", SID)
    # The API's answer, read afterwards, leaves the failure as the callback recorded it.
    lifecycle.record_sent(Message, [(prompt.pk, SID)], timezone.now())
    prompt.refresh_from_db()
    assert (prompt.status, prompt.error_code, prompt.provider_message_id) == (Message.Status.FAILED, "21610", SID)
    assert prompt.sent_at is not None
    # Redelivered: found by the provider id now, and nothing changes twice.
    assert twilio_post(f"{STATUS}?ref=message-{prompt.pk}", form).status_code == 204
    assert ConsentEvent.objects.filter(kind=EventKind.REVOKED).count() == 1


def test_redelivered_early_callback_changes_nothing_twice(topic, twilio_post):
    prompt = handed_over(queued_prompt(topic))
    path = f"{STATUS}?ref=message-{prompt.pk}"
    assert twilio_post(path, twilio_form("twilio_status_delivered.txt")).status_code == 204
    prompt.refresh_from_db()
    first = (prompt.status, prompt.provider_message_id, prompt.status_at)
    assert first[:2] == (Message.Status.DELIVERED, SID)
    events = ConsentEvent.objects.count()
    assert twilio_post(path, twilio_form("twilio_status_delivered.txt")).status_code == 204
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id, prompt.status_at) == first
    assert ConsentEvent.objects.count() == events


def test_a_reference_to_a_message_with_another_provider_id_changes_nothing(topic, twilio_post):
    consent = active_consent(topic)
    prompt = mark_sent(Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT), "SMtheirs0000000000000000000000001")
    before = Message.objects.values().get(pk=prompt.pk)
    path = f"{STATUS}?ref=message-{prompt.pk}"
    assert twilio_post(path, twilio_form("twilio_status_delivered.txt")).status_code == 204
    assert twilio_post(path, twilio_form("twilio_status_failed_21610.txt", To=None)).status_code == 204
    assert Message.objects.values().get(pk=prompt.pk) == before
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert not Message.objects.filter(provider_message_id__in=[SID, "SM21610aaaabbbbccccddddeeeeffff0000"]).exists()


def test_a_reference_to_a_message_sent_to_another_number_changes_nothing(topic, twilio_post):
    prompt = handed_over(queued_prompt(topic, phone="+14155550177"))
    # The recorded callback is about +14155550123.
    assert twilio_post(f"{STATUS}?ref=message-{prompt.pk}", twilio_form("twilio_status_delivered.txt")).status_code == 204
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id) == (Message.Status.SENDING, None)


@pytest.mark.parametrize("query", [
    "ref=garbage", "ref=delivery-abc", "ref=message-abc", "ref=message-0", "ref=message-999999",
    "ref=message-99999999999999999999999999", "ref=delivery-99999999999999999", "ref=", "ref", "ref=%C3%A9",
    "ref=message-{pk}%0A", "ref=message-{pk}&ref=message-{pk}", "ref=message-{pk}.5", "ref=%E2%80%AE",
    "ref=" + "9" * 3000, "ref=inbound-{pk}",
])
def test_malformed_references_are_ignored_never_an_error(topic, twilio_post, query):
    consent = active_consent(topic)
    prompt = handed_over(Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT))
    inbound = Message.objects.filter(direction=Message.Direction.INBOUND).first()
    path = f"{STATUS}?{query.format(pk=prompt.pk)}"
    assert twilio_post(path, twilio_form("twilio_status_delivered.txt")).status_code == 204
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id) == (Message.Status.SENDING, None)
    # Answered as today: the opt-out error still finds the contact by the number it names.
    assert twilio_post(path, twilio_form("twilio_status_failed_21610.txt")).status_code == 204
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id) == (Message.Status.SENDING, None)
    assert inbound is None or Message.objects.get(pk=inbound.pk).provider_message_id == inbound.provider_message_id


def test_a_reference_to_an_inbound_message_or_a_message_not_handed_over_changes_nothing(topic, twilio_post):
    twilio_post(INBOUND, inbound_form("Hello?", sid="SMinbound00000000000000000000001"))
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    queued = queued_prompt(topic, phone="+14155550123")
    for message in (inbound, queued):
        before = Message.objects.values().get(pk=message.pk)
        assert twilio_post(f"{STATUS}?ref=message-{message.pk}",
                           twilio_form("twilio_status_delivered.txt")).status_code == 204
        assert Message.objects.values().get(pk=message.pk) == before
