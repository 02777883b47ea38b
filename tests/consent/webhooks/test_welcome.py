"""One welcome after every confirmation — YES (signed webhook), the link's page, POST optins/confirm/ — never two.

And the STOP reply names the brand on every revocation path.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from consent import services
from consent.models import ConsentStatus, Message, RevocationReview, Source
from consent.preferences import Subject, preferences_withdraw
from tests.prompts import delivered_token

from .payloads import twilio_form
from .test_revocation_webhooks import FR_PHONE, PHONE, active_consent, sid, text_in, whatsapp_text

pytestmark = pytest.mark.django_db

WELCOME = "Acme: welcome to Acme promotions! About 4 msgs/month. Reply HELP for help, STOP to cancel."


@pytest.fixture
def welcoming(topic):
    return services.topic_update(topic=topic, welcome_message=WELCOME)


def welcomes(**filters):
    return list(Message.objects.filter(direction=Message.Direction.OUTBOUND, kind=Message.Kind.CONFIRMED_REPLY,
                                       **filters))


def prompted(topic, phone=PHONE, channel="sms"):
    services.optin_request(phone=phone, topic=topic, channel=channel, source=Source.API, evidence={"ip": "192.0.2.1"})
    return delivered_token()


def test_yes_sends_the_topics_welcome_once_even_when_redelivered(welcoming, twilio_post, run_on_commit, outbox):
    prompted(welcoming)
    message_sid = sid()
    with run_on_commit():
        text_in(twilio_post, "YES", message_sid=message_sid)
        text_in(twilio_post, "YES", message_sid=message_sid)  # the same webhook again
    (welcome,) = welcomes()
    assert welcome.body == WELCOME and welcome.status == Message.Status.SENT
    assert [m.body for m in outbox.sent if m.body == WELCOME] == [WELCOME]
    assert welcoming.consents.get().status == ConsentStatus.ACTIVE
    with run_on_commit():
        text_in(twilio_post, "YES")  # a second YES: nothing pending any more, no second welcome
    assert len(welcomes()) == 1


def test_the_link_page_sends_one_welcome_even_on_a_double_click(welcoming, client, run_on_commit, outbox):
    token = prompted(welcoming)
    with run_on_commit():
        assert client.post(f"/optin/confirm/{token}/").status_code == 200
        assert client.post(f"/optin/confirm/{token}/").status_code == 400
    (welcome,) = welcomes()
    assert welcome.body == WELCOME and welcome.status == Message.Status.SENT and welcome.topic == welcoming
    assert [m.body for m in outbox.sent].count(WELCOME) == 1


def test_the_api_sends_one_welcome_even_when_the_call_is_retried(welcoming, api_client, run_on_commit):
    token = prompted(welcoming)
    with run_on_commit():
        assert api_client.post("/api/v1/optins/confirm/", {"token": token}, format="json").status_code == 200
        assert api_client.post("/api/v1/optins/confirm/", {"token": token}, format="json").status_code == 400
    (welcome,) = welcomes()
    assert welcome.body == WELCOME and welcome.status == Message.Status.SENT


def test_without_a_welcome_text_the_default_names_brand_help_and_stop(topic, api_client, settings, run_on_commit):
    settings.CONSENT_BRAND_NAME = "Acme Stores"
    token = prompted(topic)
    with run_on_commit():
        api_client.post("/api/v1/optins/confirm/", {"token": token}, format="json")
    (welcome,) = welcomes()
    assert welcome.body == ("Acme Stores: You are subscribed to Acme promotions. Msg & data rates may apply. "
                            "Reply HELP for help, STOP to unsubscribe.")


def test_a_welcome_text_without_brand_or_keywords_gets_them(topic, api_client, run_on_commit):
    topic = services.topic_update(topic=topic, welcome_message="Welcome! About 4 msgs/month.")
    token = prompted(topic)
    with run_on_commit():
        api_client.post("/api/v1/optins/confirm/", {"token": token}, format="json")
    (welcome,) = welcomes()
    assert welcome.body == "Acme promotions: Welcome! About 4 msgs/month. Reply HELP for help, STOP to unsubscribe."


def test_the_welcome_is_transactional_and_goes_in_quiet_hours(welcoming, client, run_on_commit):
    token = prompted(welcoming)
    night = datetime(2026, 3, 10, 23, 30, tzinfo=ZoneInfo("America/Los_Angeles"))  # outside 08:00-21:00
    with time_machine.travel(night, tick=False), run_on_commit():
        assert client.post(f"/optin/confirm/{token}/").status_code == 200
    (welcome,) = welcomes()
    assert welcome.status == Message.Status.SENT


def test_welcome_after_a_whatsapp_yes_goes_inside_the_window(welcoming, whatsapp_post, run_on_commit):
    prompted(welcoming, phone=FR_PHONE, channel="whatsapp")
    with run_on_commit():
        assert whatsapp_post(whatsapp_text("OUI", "wamid.yes1")).status_code == 200
    (welcome,) = welcomes(channel="whatsapp")
    assert welcome.body == WELCOME and welcome.status == Message.Status.SENT


def test_no_free_form_welcome_on_whatsapp_outside_the_window(welcoming, client, run_on_commit):
    token = prompted(welcoming, phone=FR_PHONE, channel="whatsapp")  # the prompt went as the utility template
    with run_on_commit():
        assert client.post(f"/optin/confirm/{token}/").status_code == 200
    (welcome,) = welcomes(channel="whatsapp")
    assert welcome.status == Message.Status.SKIPPED
    assert "24-hour window" in welcome.error_message


# --- the STOP reply names the brand on every revocation path ----------------------------------


@pytest.fixture
def branded(settings):
    settings.CONSENT_BRAND_NAME = "Acme Stores"


def stop_replies():
    return list(Message.objects.filter(direction=Message.Direction.OUTBOUND, kind=Message.Kind.STOP_REPLY))


@pytest.mark.parametrize("text", ["STOP", "STOP PROMO", "pls stop txting me", "arrête de m'envoyer des SMS"])
def test_keyword_and_text_revocations_name_the_brand(topic, twilio_post, run_on_commit, branded, text):
    active_consent(topic)
    with run_on_commit():
        text_in(twilio_post, text)
    (reply,) = stop_replies()
    assert reply.body.startswith("Acme Stores: You are unsubscribed"), reply.body


def test_staff_revocation_names_the_brand(topic, marketer_client, run_on_commit, branded):
    active_consent(topic)
    with run_on_commit():
        response = marketer_client.post("/api/v1/consents/revoke/", {"phone": PHONE, "channel": "sms", "via": "email"},
                                        format="json")
    assert response.status_code == 200, response.content
    (reply,) = stop_replies()
    assert reply.body.startswith("Acme Stores: ")


def test_review_decision_names_the_brand(topic, twilio_post, run_on_commit, role_client, branded):
    active_consent(topic)
    text_in(twilio_post, "stop sending me the red one, I want blue")
    review = RevocationReview.objects.get()
    with run_on_commit():
        response = role_client("marketer").post(f"/api/v1/revocations/review/{review.pk}/resolve/",
                                                {"decision": "revoke"}, format="json")
    assert response.status_code == 200, response.content
    (reply,) = stop_replies()
    assert reply.body.startswith("Acme Stores: ")


def test_preference_centre_withdrawal_names_the_brand(topic, run_on_commit, branded):
    consent = active_consent(topic)
    with run_on_commit():
        preferences_withdraw(subject=Subject(contact=consent.contact, channel="sms"), evidence={"ip": "192.0.2.1"})
    (reply,) = stop_replies()
    assert reply.body.startswith("Acme Stores: ")


def test_stop_reply_without_a_brand_setting_names_the_topic(topic, twilio_post, run_on_commit):
    active_consent(topic)
    form = twilio_form("twilio_inbound_stop.txt", Body="STOP", MessageSid=sid(), From=PHONE)
    with run_on_commit():
        assert twilio_post("/webhooks/twilio/inbound/", form).status_code == 200
    (reply,) = stop_replies()
    assert reply.body.startswith("Acme promotions: ")
