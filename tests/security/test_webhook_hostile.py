"""Hostile webhook input: wrong, missing and replayed signatures, 10 MB bodies, broken UTF-8,
repeated form fields, JSON nesting bombs. Every one answers 4xx (or Twilio's 200 for a
redelivery it expects to be ignored), changes no consent, stores nothing twice and never 5xx.
"""

import json

import pytest
from django.http import QueryDict

from consent import services
from consent.models import Consent, ConsentEvent, ConsentStatus, Message, Source
from consent.signatures import twilio_signature, whatsapp_signature
from tests.prompts import deliver_prompts

from .conftest import TWILIO_TOKEN, WHATSAPP_SECRET

pytestmark = pytest.mark.django_db

INBOUND = "/webhooks/twilio/inbound/"
STATUS = "/webhooks/twilio/status/"
WHATSAPP = "/webhooks/whatsapp/"
PHONE = "+14155550123"
WA_ID = PHONE[1:]
TEN_MB = 10 * 1024 * 1024


@pytest.fixture
def active(topic, provider_secrets):
    """An active SMS and WhatsApp consent, and a snapshot function of everything a webhook could change."""
    for channel in ("sms", "whatsapp"):
        result = services.optin_request(phone=PHONE, topic=topic, channel=channel, source=Source.API, evidence={"ip": "x"})
        deliver_prompts()  # YES confirms only prompts handed to the provider
        services.optin_confirm_by_reply(contact=result.consent.contact, channel=channel, source=Source.API)

    def snapshot():
        return (sorted(Consent.objects.values_list("channel", "status")), ConsentEvent.objects.count(),
                Message.objects.filter(direction="in").count())

    return snapshot


def stop_form(sid="SM" + "a" * 32, **changes):
    form = QueryDict(mutable=True)
    form.update({"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32,
                 "From": PHONE, "To": "+15005550006", "Body": "STOP", "NumMedia": "0", "ApiVersion": "2010-04-01"})
    for key, value in changes.items():
        form.setlist(key, value if isinstance(value, list) else [value])
    return form


def post_twilio(client, form_or_bytes, *, signature=None, path=INBOUND, sign_form=None, **extra):
    body = form_or_bytes if isinstance(form_or_bytes, bytes) else form_or_bytes.urlencode().encode()
    if signature is None:
        signature = twilio_signature(TWILIO_TOKEN, "http://testserver" + path, sign_form if sign_form is not None else form_or_bytes)
    headers = {} if signature is False else {"HTTP_X_TWILIO_SIGNATURE": signature}
    return client.generic("POST", path, body, content_type="application/x-www-form-urlencoded", **headers, **extra)


def stop_json(message_id="wamid.HOSTILE1", text="STOP"):
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550000000", "phone_number_id": "123"},
        "contacts": [{"profile": {"name": "A"}, "wa_id": WA_ID}],
        "messages": [{"from": WA_ID, "id": message_id, "timestamp": "1700000000", "type": "text", "text": {"body": text}}],
    }}]}]}


def post_whatsapp(client, body: bytes, *, signature=None, **extra):
    if signature is None:
        signature = whatsapp_signature(WHATSAPP_SECRET, body)
    headers = {} if signature is False else {"HTTP_X_HUB_SIGNATURE_256": signature}
    return client.generic("POST", WHATSAPP, body, content_type="application/json", **headers, **extra)


# --- signatures ------------------------------------------------------------------------------

TWILIO_BAD_SIGNATURES = {
    "missing": False,
    "empty": "",
    "garbage": "bm90IGEgc2lnbmF0dXJl",
    "wrong token": twilio_signature("0" * 32, "http://testserver" + INBOUND, stop_form()),
    "other path": twilio_signature(TWILIO_TOKEN, "http://testserver" + STATUS, stop_form()),
    "other host": twilio_signature(TWILIO_TOKEN, "https://evil.example" + INBOUND, stop_form()),
    "sha256 of the same": "c2hhMjU2" * 5,
    "very long": "A" * 100_000,
    "non-ascii": "sïgnatüre",
}


@pytest.mark.parametrize("name", sorted(TWILIO_BAD_SIGNATURES))
def test_twilio_bad_signature_is_403_and_changes_nothing(client, active, name):
    before = active()
    response = post_twilio(client, stop_form(), signature=TWILIO_BAD_SIGNATURES[name])
    assert response.status_code == 403
    assert active() == before


def test_twilio_signature_replayed_on_a_changed_body_is_403(client, active):
    before = active()
    original = stop_form(Body="hello")
    stolen = twilio_signature(TWILIO_TOKEN, "http://testserver" + INBOUND, original)
    assert post_twilio(client, stop_form(Body="STOP"), signature=stolen).status_code == 403
    assert post_twilio(client, stop_form(Body="hello", From="+14155550999"), signature=stolen).status_code == 403
    assert active() == before


def test_twilio_signature_replayed_on_the_status_url_is_403(client, active):
    form = stop_form()
    stolen = twilio_signature(TWILIO_TOKEN, "http://testserver" + INBOUND, form)
    assert post_twilio(client, form, signature=stolen, path=STATUS).status_code == 403


def test_twilio_replayed_delivery_is_applied_once(client, active, run_on_commit):
    with run_on_commit():
        first = post_twilio(client, stop_form())
    after_first = active()
    with run_on_commit():
        replays = [post_twilio(client, stop_form()) for _ in range(5)]
    assert first.status_code == 200 and {r.status_code for r in replays} == {200}
    assert active() == after_first
    assert Message.objects.filter(kind=Message.Kind.STOP_REPLY).count() == 1


WHATSAPP_BAD_SIGNATURES = {
    "missing": False,
    "empty": "",
    "no prefix": whatsapp_signature(WHATSAPP_SECRET, b"{}").split("=", 1)[1],
    "sha1": "sha1=" + "0" * 40,
    "wrong secret": whatsapp_signature("not-the-secret", json.dumps(stop_json()).encode()),
    "of another body": whatsapp_signature(WHATSAPP_SECRET, b"{}"),
    "uppercase garbage": "SHA256=" + "Z" * 64,
    "very long": "sha256=" + "a" * 100_000,
}


@pytest.mark.parametrize("name", sorted(WHATSAPP_BAD_SIGNATURES))
def test_whatsapp_bad_signature_is_403_and_changes_nothing(client, active, name):
    before = active()
    response = post_whatsapp(client, json.dumps(stop_json()).encode(), signature=WHATSAPP_BAD_SIGNATURES[name])
    assert response.status_code == 403
    assert active() == before


def test_whatsapp_replayed_batch_is_applied_once(client, active, run_on_commit):
    body = json.dumps(stop_json()).encode()
    with run_on_commit():
        assert post_whatsapp(client, body).status_code == 200
    after_first = active()
    with run_on_commit():
        assert {post_whatsapp(client, body).status_code for _ in range(5)} == {200}
    assert active() == after_first


@pytest.mark.parametrize("query", ["", "?hub.mode=subscribe&hub.challenge=1", "?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
                                   "?hub.mode=unsubscribe&hub.verify_token=verify-me-please&hub.challenge=1"])
def test_whatsapp_verification_without_the_right_token_is_403(client, provider_secrets, query):
    assert client.get(WHATSAPP + query).status_code == 403


# --- size ------------------------------------------------------------------------------------


def test_twilio_10_mb_body_is_413(client, active):
    before = active()
    body = stop_form().urlencode().encode() + b"&Padding=" + b"x" * TEN_MB
    assert post_twilio(client, body, signature="x").status_code == 413
    assert active() == before


def test_twilio_10_mb_body_with_a_lying_content_length_never_applies(client, active):
    before = active()
    body = stop_form().urlencode().encode() + b"&Padding=" + b"x" * TEN_MB
    response = post_twilio(client, body, signature=twilio_signature(TWILIO_TOKEN, "http://testserver" + INBOUND, stop_form()),
                           CONTENT_LENGTH="100")
    assert 400 <= response.status_code < 500
    assert active() == before


def test_whatsapp_10_mb_body_is_413(client, active):
    before = active()
    payload = stop_json()
    payload["padding"] = "x" * TEN_MB
    body = json.dumps(payload).encode()
    assert post_whatsapp(client, body).status_code == 413
    assert active() == before


# --- encoding and shape ----------------------------------------------------------------------


def test_twilio_broken_utf8_is_refused_or_harmless(client, active):
    before = active()
    body = stop_form().urlencode().encode().replace(b"Body=STOP", b"Body=ST%FF%FEOP%C3%28")
    response = post_twilio(client, body, signature="whatever")
    assert response.status_code in (400, 403)
    assert active() == before


def test_whatsapp_broken_utf8_is_400(client, active):
    before = active()
    body = json.dumps(stop_json()).encode().replace(b'"STOP"', b'"ST\xff\xfeOP\xc3\x28"')
    response = post_whatsapp(client, body)
    assert response.status_code == 400
    assert active() == before


@pytest.mark.parametrize("field,values", [
    ("Body", ["hello", "STOP"]),
    ("From", ["+14155550999", PHONE]),
    ("MessageSid", ["SM" + "b" * 32, "SM" + "a" * 32]),
])
def test_twilio_repeated_fields_are_400(client, active, field, values):
    """Twilio never repeats these fields; a request that does is ambiguous and must not change consent."""
    before = active()
    form = stop_form(**{field: values})
    response = post_twilio(client, form)
    assert response.status_code == 400
    assert active() == before


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_whatsapp_json_nesting_bomb_is_400(client, active, depth):
    before = active()
    body = b'{"object": "whatsapp_business_account", "entry": ' + b"[" * depth + b"]" * depth + b"}"
    response = post_whatsapp(client, body)
    assert response.status_code == 400
    assert active() == before


@pytest.mark.parametrize("body", [
    b"", b"null", b"[]", b'"STOP"', b"1e999999", b"{" + b'"a":1,' * 20_000 + b'"a":2}',
    json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "messages": [{"from": WA_ID, "id": ["not", "a", "string"], "type": "text", "text": {"body": "STOP"}}]}}]}]}).encode(),
    json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "messages": [{"from": {"x": 1}, "id": "wamid.X", "type": "text", "text": {"body": "STOP"}}]}}]}]}).encode(),
    json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "messages": [{"from": WA_ID, "id": "wamid.X", "type": "text", "text": "STOP"}]}}]}]}).encode(),
    json.dumps({"object": "whatsapp_business_account", "entry": "x" * 1000}).encode(),
])
def test_whatsapp_malformed_signed_bodies_never_5xx_nor_change_consent(client, active, body):
    before = active()
    response = post_whatsapp(client, body)
    assert response.status_code < 500
    assert response.status_code in (200, 400)
    assert active() == before


def test_twilio_nul_and_control_characters_in_body_do_not_break_storage(client, active, run_on_commit):
    form = stop_form(Body="hel\x00lo\x07 there", sid="SM" + "c" * 32)
    with run_on_commit():
        response = post_twilio(client, form)
    assert response.status_code == 200
    assert Message.objects.get(provider_message_id="SM" + "c" * 32).body == "hello there"
    assert set(Consent.objects.values_list("status", flat=True)) == {ConsentStatus.ACTIVE}
