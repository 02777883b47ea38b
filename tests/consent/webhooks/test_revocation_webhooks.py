"""Revocation by any reasonable means, end to end through signed webhooks, the API and the admin.

Clear texts revoke with one confirmation; texts that may be revocations wait for a person or their
deadline (10 US business days); staff revocations carry how they reached staff; exactly one
confirmation after any revocation, none for provider opt-outs and none twice.
"""

import json
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from consent import services
from consent.messaging import message_deliver
from consent.models import (
    ConsentEvent,
    ConsentStatus,
    EventKind,
    Message,
    RevocationReview,
    Source,
    StaffAction,
    actor_for,
)
from tests.prompts import deliver_prompts

from .payloads import twilio_form

pytestmark = pytest.mark.django_db

INBOUND = "/webhooks/twilio/inbound/"
STATUS = "/webhooks/twilio/status/"
REVIEWS = "/api/v1/revocations/review/"
PHONE = "+14155550123"  # San Francisco: America/Los_Angeles
FR_PHONE = "+33612345678"
_sids = iter(range(1, 10**6))


def sid():
    return f"SM{next(_sids):032d}"


def active_consent(topic, phone=PHONE, channel="sms"):
    result = services.optin_request(phone=phone, topic=topic, channel=channel, source=Source.API, evidence={"ip": "192.0.2.1"})
    deliver_prompts(contact=result.consent.contact, topic=topic, channel=channel)
    services.optin_confirm_by_reply(contact=result.consent.contact, channel=channel, source=Source.SMS_KEYWORD)
    result.consent.refresh_from_db()
    return result.consent


def text_in(twilio_post, body, *, message_sid=None, phone=PHONE):
    message_sid = message_sid or sid()
    form = twilio_form("twilio_inbound_stop.txt", Body=body, MessageSid=message_sid, SmsMessageSid=message_sid,
                       SmsSid=message_sid, From=phone)
    response = twilio_post(INBOUND, form)
    assert response.status_code == 200
    return message_sid


def whatsapp_text(text, message_id, phone=FR_PHONE):
    wa_id = phone[1:]
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550000000", "phone_number_id": "123"},
            "contacts": [{"profile": {"name": "A"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": message_id, "timestamp": str(int(time.time())), "type": "text",
                          "text": {"body": text}}]}}]}]}).encode()


def confirmations(**filters):
    return list(Message.objects.filter(direction=Message.Direction.OUTBOUND, kind=Message.Kind.STOP_REPLY, **filters))


def revoked_events():
    return list(ConsentEvent.objects.filter(kind=EventKind.REVOKED).order_by("seq"))


# --- clear revocations ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["pls stop txting me", "Take me off your list!", "please unsubscribe me"])
def test_clear_english_text_revokes_like_stop_with_one_confirmation(topic, twilio_post, run_on_commit, settings, text):
    settings.CONSENT_BRAND_NAME = "Acme"
    consent = active_consent(topic)
    with run_on_commit():
        message_sid = text_in(twilio_post, text)
        again = text_in(twilio_post, text, message_sid=message_sid)  # redelivered: changes nothing twice
    assert again == message_sid
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    (event,) = revoked_events()
    assert event.source == Source.SMS_TEXT
    assert event.evidence["inbound_text"] == text
    assert event.evidence["rule"] and event.evidence["reason"] == "revocation in other words"
    (confirmation,) = confirmations()
    assert confirmation.status == Message.Status.SENT
    assert confirmation.body.startswith("Acme: ") and "unsubscribed" in confirmation.body
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    assert inbound.kind == Message.Kind.INBOUND and inbound.body == text  # still stored as the inbound message


def test_clear_french_text_on_whatsapp_revokes_with_one_confirmation(topic, whatsapp_post, run_on_commit):
    consent = active_consent(topic, phone=FR_PHONE, channel="whatsapp")
    body = whatsapp_text("Je ne veux plus recevoir vos SMS, merci", "wamid.FR1")
    with run_on_commit():
        assert whatsapp_post(body).status_code == 200
        assert whatsapp_post(body).status_code == 200  # redelivery
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    (event,) = revoked_events()
    assert (event.source, event.evidence["rule"]) == (Source.WHATSAPP_TEXT, "fr_je_ne_veux_plus")
    (confirmation,) = confirmations()
    assert confirmation.channel == "whatsapp" and confirmation.status == Message.Status.SENT
    assert "Acme promotions" in confirmation.body  # no brand configured: the topics revoked are named


def test_a_text_that_is_no_revocation_changes_nothing(topic, twilio_post, run_on_commit):
    consent = active_consent(topic)
    with run_on_commit():
        text_in(twilio_post, "can't stop smiling, thanks!")
        text_in(twilio_post, "will you stop by tomorrow?")
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert not RevocationReview.objects.exists() and confirmations() == []


# --- the review queue -----------------------------------------------------------------------


def test_maybe_waits_for_a_person_and_only_their_decision_revokes(topic, twilio_post, run_on_commit, role_client):
    consent = active_consent(topic)
    with run_on_commit():
        text_in(twilio_post, "stop sending me the red one, I want blue")
    review = RevocationReview.objects.get()
    assert review.rule == "en_stop_sending_something" and review.decision == ""
    assert review.deadline > review.received_at + timedelta(days=13)
    # Before its deadline nothing changes by itself, and the text gets no automatic reply.
    assert services.revocation_reviews_apply_due(now=review.deadline - timedelta(minutes=1)) == 0
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE and confirmations() == []

    auditor = role_client("auditor")
    listed = auditor.get(REVIEWS, {"status": "open"}).json()["results"]
    assert [(r["id"], r["text"], r["status"], r["phone"]) for r in listed] == [
        (review.pk, "stop sending me the red one, I want blue", "open", PHONE)]
    assert auditor.post(f"{REVIEWS}{review.pk}/resolve/", {"decision": "revoke"}, format="json").status_code == 403

    marketer = role_client("marketer")
    with run_on_commit():
        response = marketer.post(f"{REVIEWS}{review.pk}/resolve/", {"decision": "revoke", "note": "asked on the phone too"},
                                 format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "resolved" and response.json()["decision"] == "revoke"
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    (event,) = revoked_events()
    assert (event.source, event.actor) == (Source.API, "user:marketer-user")
    assert event.evidence["revocation_review_id"] == review.pk and event.evidence["note"] == "asked on the phone too"
    assert len(confirmations()) == 1
    again = marketer.post(f"{REVIEWS}{review.pk}/resolve/", {"decision": "keep"}, format="json")
    assert again.status_code == 409
    assert services.revocation_reviews_apply_due(now=review.deadline + timedelta(days=1)) == 0
    assert len(revoked_events()) == 1 and len(confirmations()) == 1


def test_keep_is_recorded_with_the_actor_and_changes_no_consent(topic, twilio_post, run_on_commit, role_client):
    consent = active_consent(topic)
    with run_on_commit():
        text_in(twilio_post, "too many texts")
    review = RevocationReview.objects.get()
    response = role_client("admin").post(f"{REVIEWS}{review.pk}/resolve/", {"decision": "keep", "note": "wants fewer"},
                                         format="json")
    assert response.status_code == 200
    review.refresh_from_db()
    assert (review.decision, review.resolved_by, review.note) == ("keep", "user:admin-user", "wants fewer")
    assert services.revocation_reviews_apply_due(now=review.deadline + timedelta(days=1)) == 0
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE and revoked_events() == [] and confirmations() == []


@pytest.mark.parametrize("body", [{"decision": "maybe"}, {}, {"decision": "revoke", "note": "x" * 3000}])
def test_resolve_refuses_bad_input_with_400(topic, twilio_post, role_client, body):
    active_consent(topic)
    text_in(twilio_post, "too many texts")
    review = RevocationReview.objects.get()
    assert role_client("marketer").post(f"{REVIEWS}{review.pk}/resolve/", body, format="json").status_code == 400
    assert role_client("marketer").post(f"{REVIEWS}999999/resolve/", {"decision": "keep"}, format="json").status_code == 404


def test_list_filters_by_status_and_refuses_an_unknown_one(topic, twilio_post, role_client):
    active_consent(topic)
    text_in(twilio_post, "too many texts")
    client = role_client("marketer")
    assert client.get(REVIEWS, {"status": "nonsense"}).status_code == 400
    assert client.get(REVIEWS, {"status": "overdue"}).json()["results"] == []
    assert client.get(REVIEWS, {"status": "resolved"}).json()["results"] == []
    assert len(client.get(REVIEWS).json()["results"]) == 1


LA = ZoneInfo("America/Los_Angeles")


def test_unresolved_at_the_deadline_is_applied_skipping_weekends_and_federal_holidays(topic, twilio_post, run_on_commit):
    received = datetime(2025, 6, 13, 8, 0, tzinfo=LA)  # Friday; Juneteenth (Thursday 19) is a federal holiday
    with time_machine.travel(received - timedelta(days=1), tick=False):
        consent = active_consent(topic)
    with time_machine.travel(received, tick=False), run_on_commit():
        text_in(twilio_post, "stop sending me the red one, I want blue")
    review = RevocationReview.objects.get()
    assert review.deadline == datetime(2025, 6, 30, 8, 0, tzinfo=LA)  # 16-18, 20, 23-27, 30: ten business days
    assert review.due_soon_at == datetime(2025, 6, 26, 8, 0, tzinfo=LA)

    with time_machine.travel(datetime(2025, 6, 27, 9, 0, tzinfo=LA), tick=False):
        # Overdue stands out before the deadline; nothing is applied yet.
        assert services.revocation_reviews_apply_due() == 0
    with time_machine.travel(review.deadline - timedelta(seconds=1), tick=False):
        assert services.revocation_reviews_apply_due() == 0
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    with time_machine.travel(review.deadline + timedelta(seconds=30), tick=False), run_on_commit():
        assert services.revocation_reviews_apply_due() == 1
        assert services.revocation_reviews_apply_due() == 0  # twice: once
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    (event,) = revoked_events()
    assert (event.source, event.actor, event.evidence["reason"]) == (Source.SYSTEM, "system", "review deadline")
    review.refresh_from_db()
    assert (review.decision, review.revoked) == ("deadline", 1)
    (confirmation,) = confirmations()
    assert confirmation.status == Message.Status.SENT


def test_the_deadline_does_not_undo_a_consent_given_after_the_text(topic, twilio_post, run_on_commit):
    with run_on_commit():
        text_in(twilio_post, "stop sending me the red one")  # no consent yet
    review = RevocationReview.objects.get()
    later = review.received_at + timedelta(days=1)
    with time_machine.travel(later, tick=False):
        consent = active_consent(topic)
    with time_machine.travel(review.deadline + timedelta(minutes=1), tick=False):
        assert services.revocation_reviews_apply_due() == 1
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert revoked_events() == [] and confirmations() == []


def test_the_overdue_filter_shows_items_close_to_their_deadline(topic, twilio_post, role_client):
    active_consent(topic)
    text_in(twilio_post, "too many texts")
    review = RevocationReview.objects.get()
    with time_machine.travel(review.due_soon_at + timedelta(minutes=1), tick=False):
        listed = role_client("admin").get(REVIEWS, {"status": "overdue"}).json()["results"]
    assert [(r["id"], r["status"]) for r in listed] == [(review.pk, "overdue")]


# --- staff revocations ----------------------------------------------------------------------


def test_staff_revocation_carries_via_and_sends_one_confirmation(topic, marketer_client, run_on_commit):
    consent = active_consent(topic)
    with run_on_commit():
        response = marketer_client.post("/api/v1/consents/revoke/", {"phone": PHONE, "channel": "sms",
                                                                     "via": "phone_call", "reason": "called us"},
                                        format="json")
        again = marketer_client.post("/api/v1/consents/revoke/", {"phone": PHONE, "channel": "sms", "via": "email"},
                                     format="json")
    assert response.status_code == 200 and len(response.json()) == 1
    assert again.status_code == 200 and again.json() == []
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    (event,) = revoked_events()
    assert (event.source, event.evidence["via"], event.evidence["reason"]) == (Source.API, "phone_call", "called us")
    (confirmation,) = confirmations()  # one, not one per call
    assert confirmation.status == Message.Status.SENT


def test_staff_revocation_refuses_an_unknown_via(topic, marketer_client):
    active_consent(topic)
    response = marketer_client.post("/api/v1/consents/revoke/", {"phone": PHONE, "channel": "sms", "via": "pigeon"},
                                    format="json")
    assert response.status_code == 400 and "via" in response.json()


def test_admin_records_a_revocation_with_via(topic, admin_client, admin_user, run_on_commit):
    consent = active_consent(topic)
    url = "/admin/consent/consent/"
    page = admin_client.post(url, {"action": "revoke_selected_consents", "_selected_action": [consent.pk]})
    assert page.status_code == 200 and b"How the person asked" in page.content
    with run_on_commit():
        done = admin_client.post(url, {"action": "revoke_selected_consents", "_selected_action": [consent.pk],
                                       "apply": "1", "via": "letter", "reason": "letter of 3 March"})
    assert done.status_code == 302
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    (event,) = revoked_events()
    assert (event.source, event.evidence["via"]) == (Source.ADMIN, "letter")
    assert len(confirmations()) == 1
    # Rule 16: the staff change is logged with its actor, before and after, in the change's transaction.
    (action,) = StaffAction.objects.filter(action="consent.revoke")
    assert action.actor == actor_for(admin_user) and action.via == "admin"
    assert action.after["via"] == "letter" and action.after["reason"] == "letter of 3 March"
    assert action.before != action.after
    # A second revocation of the same consent changes nothing and records nothing.
    admin_client.post(url, {"action": "revoke_selected_consents", "_selected_action": [consent.pk],
                            "apply": "1", "via": "letter", "reason": "again"})
    assert StaffAction.objects.filter(action="consent.revoke").count() == 1


def test_admin_review_queue_shows_overdue_items_and_resolves(topic, twilio_post, admin_client, run_on_commit):
    consent = active_consent(topic)
    text_in(twilio_post, "too many texts")
    review = RevocationReview.objects.get()
    with time_machine.travel(review.due_soon_at + timedelta(minutes=1), tick=True):
        page = admin_client.get("/admin/consent/revocationreview/")
    assert page.status_code == 200 and b"overdue" in page.content and b"too many texts" in page.content
    with run_on_commit():
        done = admin_client.post(f"/admin/consent/revocationreview/{review.pk}/change/",
                                 {"resolve_as": "revoke", "decision_note": "clear enough"})
    assert done.status_code == 302
    review.refresh_from_db()
    consent.refresh_from_db()
    assert (review.decision, consent.status) == ("revoke", ConsentStatus.REVOKED)
    assert revoked_events()[0].source == Source.ADMIN
    assert len(confirmations()) == 1


# --- exactly one confirmation ---------------------------------------------------------------


def test_provider_opt_out_gets_no_confirmation(topic, twilio_post, run_on_commit):
    consent = active_consent(topic)
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    with run_on_commit():
        response = twilio_post(STATUS, twilio_form("twilio_status_failed_21610.txt", MessageSid=prompt.provider_message_id))
    assert response.status_code in (200, 204)
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    assert revoked_events()[0].source == Source.PROVIDER
    assert confirmations() == []  # the provider already answered the person


def test_stop_reply_names_the_brand(topic, twilio_post, run_on_commit, settings):
    settings.CONSENT_BRAND_NAME = "Acme Stores"
    active_consent(topic)
    with run_on_commit():
        text_in(twilio_post, "STOP")
    (confirmation,) = confirmations()
    assert confirmation.body.startswith("Acme Stores: You are unsubscribed")


def test_stop_reply_without_a_brand_names_the_topics(topic, twilio_post, run_on_commit):
    active_consent(topic)
    with run_on_commit():
        text_in(twilio_post, "STOP")
    (confirmation,) = confirmations()
    assert confirmation.body.startswith("Acme promotions: You are unsubscribed")


def test_scope_all_revokes_every_channel_with_one_confirmation(topic, twilio_post, run_on_commit, settings):
    settings.CONSENT_REVOKE_SCOPE = "all"
    sms, whatsapp = active_consent(topic), active_consent(topic, channel="whatsapp")
    with run_on_commit():
        text_in(twilio_post, "please stop texting me")
    sms.refresh_from_db()
    whatsapp.refresh_from_db()
    assert (sms.status, whatsapp.status) == (ConsentStatus.REVOKED, ConsentStatus.REVOKED)
    assert sorted(e.channel for e in revoked_events()) == ["sms", "whatsapp"]
    (confirmation,) = confirmations()
    assert confirmation.channel == "sms"


def test_scope_channel_leaves_other_channels(topic, twilio_post, run_on_commit):
    sms, whatsapp = active_consent(topic), active_consent(topic, channel="whatsapp")
    with run_on_commit():
        text_in(twilio_post, "STOP")
    sms.refresh_from_db()
    whatsapp.refresh_from_db()
    assert (sms.status, whatsapp.status) == (ConsentStatus.REVOKED, ConsentStatus.ACTIVE)


def test_a_confirmation_later_than_five_minutes_is_not_sent(topic):
    consent = active_consent(topic)
    with time_machine.travel(timezone.now() - timedelta(minutes=6), tick=False):
        services.revocation_apply(contact=consent.contact, channel="sms", source=Source.API, reason="test")
    (confirmation,) = confirmations()
    assert message_deliver(message_id=confirmation.pk) == "skipped"
    confirmation.refresh_from_db()
    assert confirmation.status == Message.Status.SKIPPED and "5 minutes" in confirmation.error_message


def test_no_free_form_confirmation_on_whatsapp_outside_the_window(topic):
    consent = active_consent(topic, channel="whatsapp")
    assert consent.contact.whatsapp_window_until is None  # the person never wrote on WhatsApp: the window is closed
    services.revocation_apply(contact=consent.contact, channel="whatsapp", source=Source.API)
    (confirmation,) = confirmations()
    assert confirmation.status == Message.Status.SKIPPED and "24-hour window" in confirmation.error_message
