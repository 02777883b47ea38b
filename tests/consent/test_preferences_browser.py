"""The preference centre in a real headless Chromium: a customer opens the link from a HELP reply (a
signed Twilio webhook, as if texted from the handset), withdraws one topic, and the consent is revoked.

With SCREENSHOT_DIR set, the page is saved there (docs/ holds the one the README shows).
"""

import os
import re
import urllib.parse
from pathlib import Path

import pytest
import requests
from django.db import transaction
from django.utils import timezone

from consent import services
from consent.models import Consent, ConsentStatus, Source
from consent.signatures import twilio_signature
from tests.browser import BROWSER_MARKS
from tests.browser import browser_page as open_browser_page

PHONE = "+14155550123"
TWILIO_TOKEN = "browser-test-twilio-token"

pytestmark = BROWSER_MARKS


@pytest.fixture
def browser_page(monkeypatch):
    yield from open_browser_page(monkeypatch, user_agent="Mozilla/5.0 (preference test) Chromium",
                                 viewport={"width": 1280, "height": 800})


def subscribed(topic):
    services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    consent = Consent.objects.get(topic=topic, channel="sms")
    with transaction.atomic():
        services.optin_confirm(consents=[consent], source=Source.API, evidence={"test": True}, now=timezone.now())
    return consent


def test_a_customer_withdraws_one_topic_from_the_help_replys_link(live_server, settings, browser_page, topic, outbox):
    from django.conf import settings as live_settings

    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    news = services.topic_create(slug="news", name="Acme news", keywords=["NEWS"], consent_text="News please.",
                                 confirmation_message="Reply YES for Acme news.", help_message="Acme news: help@acme.example.",
                                 consent_ttl_days=None)
    promo, other = subscribed(topic), subscribed(news)

    path = "/webhooks/twilio/inbound/"
    form = {"MessageSid": "SMprefs000000000000000000000000001", "From": PHONE, "To": "+14155550199", "Body": "HELP",
            "NumMedia": "0", "AccountSid": "AC00000000000000000000000000000000"}
    signature = twilio_signature(TWILIO_TOKEN, live_settings.PUBLIC_BASE_URL + path, form)
    assert requests.post(live_server.url + path, data=form, headers={"X-Twilio-Signature": signature},
                         timeout=10).status_code == 200
    link = re.search(r"https?://\S+/preferences/\S+/", outbox.sent[-1].body).group(0)  # what the handset got

    page = browser_page
    page.goto(live_server.url + urllib.parse.urlsplit(link).path)
    assert page.inner_text('tr[data-topic="promo"] .state') == "Subscribed"
    assert page.inner_text('tr[data-topic="news"] .state') == "Subscribed"
    assert PHONE not in page.content() and "+1 ••• 0123" in page.content()
    promo.refresh_from_db()
    assert promo.status == ConsentStatus.ACTIVE  # opening the page changed nothing
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / "preference-centre.png"), full_page=True)

    page.click('tr[data-topic="promo"] button.withdraw')
    assert "You are unsubscribed from Acme promotions." in page.inner_text("#preferences-notice")
    assert page.inner_text('tr[data-topic="promo"] .state') == "Unsubscribed"
    promo.refresh_from_db()
    other.refresh_from_db()
    assert promo.status == ConsentStatus.REVOKED and other.status == ConsentStatus.ACTIVE
    event = promo.contact.events.filter(kind="revoked").get()
    assert event.source == "preference_centre"
    assert event.evidence["user_agent"] == "Mozilla/5.0 (preference test) Chromium"
    assert event.evidence["ip"] == "127.0.0.1"
    if folder:
        page.screenshot(path=str(Path(folder) / "preference-centre-withdrawn.png"), full_page=True)
