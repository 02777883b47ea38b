"""WhatsApp Cloud webhook end to end: verification, signature, messages, buttons, statuses, preferences."""

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
import time_machine

from consent import services
from consent.models import ConsentEvent, ConsentStatus, Contact, EventKind, Message, Source
from consent.signatures import whatsapp_signature
from tests.prompts import deliver_prompts

from .conftest import WHATSAPP_SECRET
from .payloads import whatsapp_body, whatsapp_json

pytestmark = pytest.mark.django_db

# The recorded payloads were sent around 2025-11-25 18:12 UTC (their own timestamps): run the
# tests a little before, so that consents given in a test precede the provider's events.
RECORDED_AT = datetime(2025, 11, 25, 18, 10, tzinfo=dt_timezone.utc)


@pytest.fixture(autouse=True)
def at_recording_time():
    with time_machine.travel(RECORDED_AT, tick=True):
        yield

URL = "/webhooks/whatsapp/"
PHONE = "+33612345678"
WA_ID = PHONE[1:]
TEN_MB = 10 * 1024 * 1024


def active_consent(topic, phone=PHONE, channel="whatsapp"):
    result = services.optin_request(phone=phone, topic=topic, channel=channel, source=Source.API, evidence={"ip": "192.0.2.1"})
    deliver_prompts(contact=result.consent.contact, topic=topic, channel=channel)  # YES confirms only prompts handed to the provider
    services.optin_confirm_by_reply(contact=result.consent.contact, channel=channel, source=Source.WHATSAPP_KEYWORD)
    result.consent.refresh_from_db()
    return result.consent


def body_of(payload):
    return json.dumps(payload).encode()


# verification ----------------------------------------------------------------------------


def test_verification_echoes_the_challenge(client, webhook_settings):
    response = client.get(URL, {"hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1158201444"})
    assert response.status_code == 200
    assert response.content == b"1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "test-verify-token"},
        {},
    ],
)
def test_verification_refuses(client, webhook_settings, params):
    assert client.get(URL, params).status_code == 403


def test_verification_without_a_configured_token_refuses(client, webhook_settings):
    webhook_settings.WHATSAPP_VERIFY_TOKEN = ""
    assert client.get(URL, {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}).status_code == 403


# signature and malformed input -----------------------------------------------------------


# The X-Hub-Signature-256 sent for a body (False: no header at all).
BAD_SIGNATURES = {
    "missing": lambda body: False,
    "empty": lambda body: "",
    "zeros": lambda body: "sha256=" + "0" * 64,
    "no prefix": lambda body: whatsapp_signature(WHATSAPP_SECRET, body).split("=", 1)[1],
    "sha1": lambda body: "sha1=" + "0" * 40,
    "wrong secret": lambda body: whatsapp_signature("not-the-secret", body),
    "of another body": lambda body: whatsapp_signature(WHATSAPP_SECRET, b"{}"),
    "uppercase garbage": lambda body: "SHA256=" + "Z" * 64,
    "very long": lambda body: "sha256=" + "a" * 100_000,
}


@pytest.mark.parametrize("name", sorted(BAD_SIGNATURES))
def test_bad_signature_is_403_and_changes_nothing(topic, whatsapp_post, name):
    consent = active_consent(topic)
    events = ConsentEvent.objects.count()
    body = whatsapp_body("whatsapp_text_stop.json")
    assert whatsapp_post(body, signature=BAD_SIGNATURES[name](body)).status_code == 403
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert ConsentEvent.objects.count() == events
    assert not Message.objects.filter(direction=Message.Direction.INBOUND).exists()


def test_signature_over_a_different_body_is_403(topic, whatsapp_post):
    from consent.signatures import whatsapp_signature

    signature = whatsapp_signature("test-whatsapp-app-secret", whatsapp_body("whatsapp_text_yes.json"))
    assert whatsapp_post(whatsapp_body("whatsapp_text_stop.json"), signature=signature).status_code == 403


def stop_json(message_id="wamid.HOSTILE1", text="STOP"):
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550000000", "phone_number_id": "123"},
        "contacts": [{"profile": {"name": "A"}, "wa_id": WA_ID}],
        "messages": [{"from": WA_ID, "id": message_id, "timestamp": "1700000000", "type": "text", "text": {"body": text}}],
    }}]}]}


def nesting_bomb(depth):
    return b'{"object": "whatsapp_business_account", "entry": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("body", [
    b"", b"{", b"[]", b'{"object":"page"}', b"\xff\xfe\x00",
    body_of(stop_json()).replace(b'"STOP"', b'"ST\xff\xfeOP\xc3\x28"'),  # broken UTF-8 inside a text
    nesting_bomb(1_000), nesting_bomb(100_000),
], ids=["empty", "unclosed", "list", "other object", "not UTF-8", "broken UTF-8 in a text", "nested 1000",
        "nested 100000"])
def test_malformed_signed_bodies_are_400(topic, whatsapp_post, body):
    consent = active_consent(topic)
    assert whatsapp_post(body).status_code == 400
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


def _message_payload(message):
    return body_of({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "messages": [message]}}]}]})


@pytest.mark.parametrize("body", [
    b"", b"null", b"[]", b'"STOP"', b"1e999999", b"{" + b'"a":1,' * 20_000 + b'"a":2}',
    _message_payload({"from": WA_ID, "id": ["not", "a", "string"], "type": "text", "text": {"body": "STOP"}}),
    _message_payload({"from": {"x": 1}, "id": "wamid.X", "type": "text", "text": {"body": "STOP"}}),
    _message_payload({"from": WA_ID, "id": "wamid.X", "type": "text", "text": "STOP"}),
    body_of({"object": "whatsapp_business_account", "entry": "x" * 1000}),
], ids=["empty", "null", "list", "string", "huge number", "20000 repeated keys", "id a list", "from an object",
        "text a string", "entry a string"])
def test_malformed_signed_bodies_never_5xx_nor_change_consent(topic, whatsapp_post, body):
    consent = active_consent(topic)
    events = ConsentEvent.objects.count()
    assert whatsapp_post(body).status_code in (200, 400)
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert ConsentEvent.objects.count() == events


@pytest.mark.parametrize("body", [b" " * 400_000, body_of({**stop_json(), "padding": "x" * TEN_MB})],
                         ids=["400 kB", "10 MB"])
def test_oversized_body_is_413(topic, whatsapp_post, body):
    consent = active_consent(topic)
    assert whatsapp_post(body).status_code == 413
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


def test_other_methods_are_405(client):
    assert client.put(URL).status_code == 405


# messages --------------------------------------------------------------------------------


def test_stop_text_revokes_whatsapp_consent_only(topic, whatsapp_post, run_on_commit):
    whatsapp_consent = active_consent(topic)
    sms_consent = active_consent(topic, channel="sms")
    with run_on_commit():
        response = whatsapp_post(whatsapp_body("whatsapp_text_stop.json"))
    assert response.status_code == 200
    assert response.json()["messages"] == 1
    whatsapp_consent.refresh_from_db()
    sms_consent.refresh_from_db()
    assert whatsapp_consent.status == ConsentStatus.REVOKED
    assert sms_consent.status == ConsentStatus.ACTIVE
    event = ConsentEvent.objects.get(kind=EventKind.REVOKED)
    assert (event.source, event.channel) == (Source.WHATSAPP_KEYWORD, "whatsapp")
    reply = Message.objects.get(kind=Message.Kind.STOP_REPLY)
    assert (reply.channel, reply.template) == ("whatsapp", None)  # free text inside the 24-hour window


@pytest.mark.parametrize("redeliveries", [1, 5])
def test_redelivery_changes_nothing(topic, whatsapp_post, run_on_commit, redeliveries):
    active_consent(topic)
    with run_on_commit():
        whatsapp_post(whatsapp_body("whatsapp_text_stop.json"))
        events = ConsentEvent.objects.count()
        again = [whatsapp_post(whatsapp_body("whatsapp_text_stop.json")) for _ in range(redeliveries)]
    assert [r.json()["duplicates"] for r in again] == [1] * redeliveries
    assert ConsentEvent.objects.count() == events
    assert Message.objects.filter(kind=Message.Kind.STOP_REPLY).count() == 1


def test_any_message_opens_the_24_hour_window(topic, whatsapp_post):
    whatsapp_post(whatsapp_body("whatsapp_text_question.json"))
    contact = Contact.objects.get(phone=PHONE)
    received = datetime(2025, 11, 25, 18, 12, tzinfo=dt_timezone.utc)
    assert contact.whatsapp_window_until == received + timedelta(hours=24)
    stored = Message.objects.get(direction=Message.Direction.INBOUND)
    assert (stored.body, stored.channel, stored.kind) == ("Bonjour, où est ma commande ?", "whatsapp", Message.Kind.INBOUND)


def test_template_stop_button_revokes_the_named_topic(topic, whatsapp_post, run_on_commit):
    other = services.topic_create(slug="news", name="News", keywords=["NEWS"], consent_text="c", confirmation_message="m",
                                  help_message="h", consent_ttl_days=None)
    promo = active_consent(topic)
    news = active_consent(other)
    with run_on_commit():
        whatsapp_post(whatsapp_body("whatsapp_button_reply.json"))
    promo.refresh_from_db()
    news.refresh_from_db()
    assert (promo.status, news.status) == (ConsentStatus.REVOKED, ConsentStatus.ACTIVE)


def test_interactive_yes_button_confirms(topic, whatsapp_post, run_on_commit):
    result = services.optin_request(phone=PHONE, topic=topic, channel="whatsapp", source=Source.WEB_FORM, evidence={"ip": "192.0.2.1"})
    deliver_prompts()
    with run_on_commit():
        whatsapp_post(whatsapp_body("whatsapp_interactive_button_reply.json"))
    result.consent.refresh_from_db()
    assert result.consent.status == ConsentStatus.ACTIVE
    assert Message.objects.filter(kind=Message.Kind.CONFIRMED_REPLY).count() == 1


def test_list_reply_join_starts_double_opt_in(topic, whatsapp_post, run_on_commit):
    with run_on_commit():
        whatsapp_post(whatsapp_body("whatsapp_interactive_list_reply.json"))
    consent = topic.consents.get(channel="whatsapp")
    assert consent.status == ConsentStatus.PENDING
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    assert prompt.template is None  # the window is open: a text, not the utility template


def test_media_and_system_messages_change_nothing(topic, whatsapp_post):
    active_consent(topic)
    events = ConsentEvent.objects.count()
    assert whatsapp_post(whatsapp_body("whatsapp_image.json")).status_code == 200
    assert whatsapp_post(whatsapp_body("whatsapp_system.json")).json()["ignored"] == 1
    assert whatsapp_post(whatsapp_body("whatsapp_unsupported.json")).status_code == 200
    assert ConsentEvent.objects.count() == events


# statuses --------------------------------------------------------------------------------


def test_statuses_update_our_message_in_any_order(topic, whatsapp_post, run_on_commit):
    with run_on_commit():
        services.optin_request(phone=PHONE, topic=topic, channel="whatsapp", source=Source.API, evidence={"ip": "192.0.2.1"})
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    wamid = whatsapp_json("whatsapp_status_read.json")["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]
    Message.objects.filter(pk=prompt.pk).update(provider_message_id=wamid)
    whatsapp_post(whatsapp_body("whatsapp_status_read.json"))
    whatsapp_post(whatsapp_body("whatsapp_status_delivered.json"))
    prompt.refresh_from_db()
    assert prompt.status == Message.Status.READ


def test_status_131050_revokes_with_source_provider(topic, whatsapp_post):
    consent = active_consent(topic)
    whatsapp_post(whatsapp_body("whatsapp_status_failed_131050.json"))
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    event = ConsentEvent.objects.get(kind=EventKind.REVOKED)
    assert (event.source, event.evidence["provider_error_code"]) == (Source.PROVIDER, "131050")


def test_status_131026_suppresses(topic, whatsapp_post):
    from consent.models import Suppression

    consent = active_consent(topic)
    whatsapp_post(whatsapp_body("whatsapp_status_failed_131026.json"))
    assert Suppression.objects.filter(phone_pseudonym=consent.contact.phone_pseudonym).exists()


def test_mixed_batch(topic, whatsapp_post, run_on_commit):
    with run_on_commit():
        response = whatsapp_post(whatsapp_body("whatsapp_batch_mixed.json"))
    assert response.json() == {"ok": True, "messages": 1, "duplicates": 0, "statuses": 2, "preferences": 0, "ignored": 1}
    body = Message.objects.get(kind=Message.Kind.HELP_REPLY).body
    assert body.startswith(topic.current_text.help_message + "\nYour subscriptions: http://testserver/preferences/")


# marketing preferences -------------------------------------------------------------------


def test_marketing_stop_preference_revokes_every_whatsapp_consent(topic, whatsapp_post):
    consent = active_consent(topic)
    sms = active_consent(topic, channel="sms")
    assert whatsapp_post(whatsapp_body("whatsapp_user_preferences_stop.json")).json()["preferences"] == 1
    consent.refresh_from_db()
    sms.refresh_from_db()
    assert (consent.status, sms.status) == (ConsentStatus.REVOKED, ConsentStatus.ACTIVE)
    event = ConsentEvent.objects.get(kind=EventKind.REVOKED)
    assert event.source == Source.PROVIDER
    assert event.evidence["whatsapp_user_preference"] == "stop"


def test_marketing_resume_preference_does_not_opt_in(topic, whatsapp_post):
    consent = active_consent(topic)
    services.consent_revoke(contact=consent.contact, channel="whatsapp", source=Source.API)
    whatsapp_post(whatsapp_body("whatsapp_user_preferences_resume.json"))
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED


def test_preference_for_an_unknown_number_is_ignored(whatsapp_post):
    assert whatsapp_post(whatsapp_body("whatsapp_user_preferences_stop.json")).status_code == 200
    assert not Contact.objects.exists()


def test_late_preference_stop_does_not_undo_a_newer_opt_in(topic, whatsapp_post):
    with time_machine.travel(RECORDED_AT + timedelta(hours=1)):
        consent = active_consent(topic)
    whatsapp_post(whatsapp_body("whatsapp_user_preferences_stop.json"))
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


def test_prompt_outside_the_window_uses_the_utility_template(topic, run_on_commit):
    with run_on_commit():
        services.optin_request(phone=PHONE, topic=topic, channel="whatsapp", source=Source.WEB_FORM, evidence={"ip": "192.0.2.1"})
    assert Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT).template["name"]


def test_a_sender_that_is_no_phone_number_is_counted_as_ignored(whatsapp_post):
    payload = whatsapp_json("whatsapp_text_question.json")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = "99999999"
    response = whatsapp_post(body_of(payload))
    assert response.status_code == 200
    assert (response.json()["messages"], response.json()["ignored"]) == (0, 1)
    assert not Message.objects.exists()


# statuses that come before the Cloud API's answer is recorded ------------------------------


def with_callback_data(name, callback_data):
    """A recorded status webhook whose status carries `callback_data` as biz_opaque_callback_data."""
    payload = whatsapp_json(name)
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] = callback_data
    return payload


def wamid_of(name):
    return whatsapp_json(name)["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]


def test_early_status_finds_the_message_by_the_callback_data_we_sent(topic, whatsapp_post, monkeypatch):
    """The Cloud API returns our biz_opaque_callback_data in the statuses of the message."""
    from consent import messaging
    from messaging.providers import SendResult
    from messaging.providers.whatsapp import WhatsAppCloudProvider

    services.optin_request(phone=PHONE, topic=topic, channel="whatsapp", source=Source.API, evidence={"ip": "192.0.2.1"})
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    wamid = wamid_of("whatsapp_status_delivered.json")
    seen = []

    class CallbackFirst:
        name = "whatsapp_cloud"

        def send(self, message):
            sent = WhatsAppCloudProvider("token", "106540352242922").payload_for(message)
            payload = with_callback_data("whatsapp_status_delivered.json", sent["biz_opaque_callback_data"])
            seen.append(whatsapp_post(body_of(payload)).json())
            return SendResult(provider_message_id=wamid, status="accepted")

    monkeypatch.setattr(messaging, "get_provider", lambda channel: CallbackFirst())
    assert messaging.message_deliver(message_id=prompt.pk) == "sent"
    assert seen == [{"ok": True, "messages": 0, "duplicates": 0, "statuses": 1, "preferences": 0, "ignored": 0}]
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id) == (Message.Status.DELIVERED, wamid)
    # Later statuses find it by the id, in any order.
    whatsapp_post(whatsapp_body("whatsapp_status_read.json"))
    whatsapp_post(whatsapp_body("whatsapp_status_sent.json"))
    prompt.refresh_from_db()
    assert prompt.status == Message.Status.READ


def test_early_131050_with_our_callback_data_revokes_the_messages_contact(topic, whatsapp_post):
    consent = active_consent(topic)
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    # As the sender leaves it while the provider's API call is out: no provider id yet.
    Message.objects.filter(pk=prompt.pk).update(status=Message.Status.SENDING, provider_message_id=None, sent_at=None)
    payload = with_callback_data("whatsapp_status_failed_131050.json", f"message-{prompt.pk}")
    statuses = payload["entry"][0]["changes"][0]["value"]["statuses"]
    statuses[0].pop("recipient_id")  # nothing but our reference to go by
    for _ in range(2):  # and redelivered
        assert whatsapp_post(body_of(payload)).status_code == 200
    consent.refresh_from_db()
    assert (consent.status, consent.source) == (ConsentStatus.REVOKED, Source.PROVIDER)
    event = ConsentEvent.objects.get(kind=EventKind.REVOKED)
    assert (event.evidence["provider_error_code"], event.evidence["message_id"]) == ("131050", prompt.pk)
    prompt.refresh_from_db()
    assert (prompt.status, prompt.error_code, prompt.provider_message_id) == (
        Message.Status.FAILED, "131050", wamid_of("whatsapp_status_failed_131050.json"))
