"""Round trips through the real provider clients against the loopback stand-in: a keyword comes in,
the reply goes out through the provider API, and the provider's status callback comes back."""

import pytest

from consent import services
from consent.models import ConsentEvent, ConsentStatus, EventKind, Message, Source
from consent.signatures import twilio_signature

from .payloads import twilio_form

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"


def signed(client, path, form, token):
    signature = twilio_signature(token, "http://testserver" + path, form)
    return client.post(path, data=form.urlencode(), content_type="application/x-www-form-urlencoded",
                       HTTP_X_TWILIO_SIGNATURE=signature)


def test_stop_reply_goes_out_through_twilio_and_its_status_comes_back(client, topic, use_stand_in, settings,
                                                                       run_on_commit):
    with run_on_commit():
        result = services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API,
                                        evidence={"ip": "192.0.2.1"})
    services.optin_confirm_by_reply(contact=result.consent.contact, channel="sms", source=Source.API)
    token = settings.TWILIO_AUTH_TOKEN

    with run_on_commit():
        response = signed(client, "/webhooks/twilio/inbound/", twilio_form("twilio_inbound_stop.txt"), token)
    assert response.status_code == 200
    result.consent.refresh_from_db()
    assert result.consent.status == ConsentStatus.REVOKED

    reply = Message.objects.get(kind=Message.Kind.STOP_REPLY)
    assert reply.status == Message.Status.SENT
    sent = [m for m in use_stand_in.messages(to=PHONE, api="twilio") if "unsubscribed" in m.get("body", "")]
    assert len(sent) == 1
    assert sent[0]["message_id"] == reply.provider_message_id

    status = twilio_form("twilio_status_delivered.txt", MessageSid=reply.provider_message_id,
                         SmsSid=reply.provider_message_id)
    assert signed(client, "/webhooks/twilio/status/", status, token).status_code == 204
    reply.refresh_from_db()
    assert reply.status == Message.Status.DELIVERED


def test_provider_refusing_the_prompt_as_opted_out_revokes(client, topic, use_stand_in, settings, run_on_commit):
    use_stand_in.configure(recipients={PHONE: "opted_out"})
    with run_on_commit():
        signed(client, "/webhooks/twilio/inbound/", twilio_form("twilio_inbound_stop.txt", Body="JOIN PROMO"),
               settings.TWILIO_AUTH_TOKEN)
    consent = topic.consents.get()
    assert consent.status == ConsentStatus.REVOKED
    assert ConsentEvent.objects.filter(kind=EventKind.REVOKED, source=Source.PROVIDER).count() == 1
