"""The preference centre (rule 17): a signed, scoped, expiring link in every HELP reply; one press withdraws."""

import re

import pytest
import time_machine
from django.core import signing
from django.db import transaction
from django.utils import timezone

from consent import inbound, preferences, services
from consent import outbox as consent_outbox
from consent.messaging import message_deliver
from consent.models import Consent, ConsentStatus, Message, Source
from consent.webhooks.parsers import InboundMessage

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"


def receive(text, sid, channel="sms"):
    return inbound.inbound_message_receive(
        message=InboundMessage(channel=channel, sender=PHONE, text=text, provider_message_id=sid), provider="test")


def active(topic, channel="sms"):
    services.optin_request(phone=PHONE, topic=topic, channel=channel, source=Source.API, evidence={"ip": "192.0.2.1"})
    consent = Consent.objects.get(topic=topic, channel=channel)
    with transaction.atomic():
        services.optin_confirm(consents=[consent], source=Source.API, evidence={"test": True}, now=timezone.now())
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    return consent


def help_link(outbox, sid="SMhelp1"):
    """The link as the handset got it (the stored reply shows it redacted), handed over by the sender."""
    receive("HELP", sid)
    message_deliver(message_id=Message.objects.filter(kind=Message.Kind.HELP_REPLY).latest("id").pk)
    return re.search(r"http://testserver(/preferences/[^/\s]+/)", outbox.sent[-1].body).group(1)


@pytest.fixture
def news(db):
    return services.topic_create(slug="news", name="Acme news", keywords=["NEWS"], consent_text="News please.",
                                 confirmation_message="Reply YES for Acme news.", help_message="Acme news help.",
                                 consent_ttl_days=None)


def test_every_help_reply_links_a_page_that_lists_the_topics_with_their_state(client, topic, news, outbox):
    active(topic)
    path = help_link(outbox)
    assert PHONE.lstrip("+") not in path and "0123" not in path  # the number is not in the link
    page = client.get(path)
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    html = page.content.decode()
    assert "+1 ••• 0123" in html and PHONE not in html
    assert re.search(r'data-topic="promo">\s*<td>Acme promotions</td>\s*<td class="state">Subscribed', html)
    assert re.search(r'data-topic="news">\s*<td>Acme news</td>\s*<td class="state">Not subscribed', html)


def test_withdrawing_one_topic_revokes_it_at_once_with_evidence(client, topic, news, outbox):
    promo = active(topic)
    other = active(news)
    path = help_link(outbox)
    response = client.post(path, {"action": "withdraw", "topic": "promo"}, HTTP_USER_AGENT="UA test")
    assert response.status_code == 200 and "You are unsubscribed from Acme promotions." in response.content.decode()
    promo.refresh_from_db()
    other.refresh_from_db()
    assert promo.status == ConsentStatus.REVOKED and promo.source == Source.PREFERENCE_CENTRE
    assert other.status == ConsentStatus.ACTIVE
    event = promo.contact.events.filter(kind="revoked").get()
    assert event.source == "preference_centre"
    assert event.evidence["ip"] == "127.0.0.1" and event.evidence["user_agent"] == "UA test"
    assert event.evidence["page_url"] == "http://testserver/preferences/[redacted]/"  # never the token
    stop = Message.objects.filter(kind=Message.Kind.STOP_REPLY).get()
    assert "Acme promotions" in stop.body  # the one confirmation a revocation gets


def test_withdraw_all_is_one_press_and_only_on_the_links_channel(client, topic, news, outbox):
    active(topic)
    active(news)
    on_whatsapp = active(topic, channel="whatsapp")
    client.post(help_link(outbox), {"action": "withdraw_all"})
    assert set(Consent.objects.filter(channel="sms").values_list("status", flat=True)) == {ConsentStatus.REVOKED}
    on_whatsapp.refresh_from_db()
    assert on_whatsapp.status == ConsentStatus.ACTIVE


def test_subscribing_again_starts_a_double_opt_in(client, topic, outbox):
    consent = active(topic)
    path = help_link(outbox)
    client.post(path, {"action": "withdraw", "topic": "promo"})
    response = client.post(path, {"action": "subscribe", "topic": "promo"})
    assert "reply YES to confirm" in response.content.decode()
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.PENDING and consent.source == Source.PREFERENCE_CENTRE
    assert Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT).count() == 2


def test_a_get_changes_nothing_and_bad_input_is_a_400_not_a_500(client, topic, outbox):
    consent = active(topic)
    path = help_link(outbox)
    client.get(path)
    assert client.post(path, {"action": "withdraw", "topic": "nope"}).status_code == 400
    assert client.post(path, {"action": "explode"}).status_code == 400
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE


def test_a_tampered_expired_or_foreign_link_opens_nothing(client, topic, settings):
    contact = active(topic).contact
    token = consent_outbox.preference_token(contact=contact, channel="sms")
    assert client.get(f"/preferences/{token[:-2]}xx/").status_code == 404
    forged = signing.dumps({"c": contact.pk, "ch": "sms", "p": "0" * 16}, salt=consent_outbox.PREFERENCE_SALT)
    assert client.get(f"/preferences/{forged}/").status_code == 404  # not this number's pseudonym
    other_salt = signing.dumps({"c": contact.pk, "ch": "sms", "p": contact.phone_pseudonym[:16]})
    assert client.get(f"/preferences/{other_salt}/").status_code == 404
    with time_machine.travel(timezone.now() + timezone.timedelta(days=settings.CONSENT_PREFERENCE_LINK_MAX_AGE_DAYS + 1)):
        response = client.get(f"/preferences/{token}/")
    assert response.status_code == 404 and "expired" in response.content.decode()
    assert client.get(f"/preferences/{'x' * 400}/").status_code == 404


def test_the_link_is_scoped_to_its_channel(topic):
    contact = active(topic).contact
    subject = preferences.preference_subject(consent_outbox.preference_token(contact=contact, channel="whatsapp"))
    assert subject.channel == "whatsapp" and subject.contact == contact


def test_the_link_is_masked_in_logs(topic):
    from config.logging import mask_confirmation_links

    contact = active(topic).contact
    link = consent_outbox.preference_link(consent_outbox.preference_token(contact=contact, channel="sms"))
    assert mask_confirmation_links(f"sent {link} ok") == "sent http://testserver/preferences/[masked]/ ok"


def test_what_is_stored_shows_the_link_redacted_and_opens_nothing(client, topic, outbox):
    active(topic)
    path = help_link(outbox)
    stored = Message.objects.filter(kind=Message.Kind.HELP_REPLY).get().body
    assert stored.endswith("Your subscriptions: http://testserver/preferences/[redacted]/")
    assert path not in stored  # only the handset got a usable link
    assert client.get("/preferences/[redacted]/").status_code == 404
