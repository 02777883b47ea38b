"""The hosted opt-in page in a real headless Chromium (Playwright driving Debian's chromium).

Fill the form, see the confirmation message, confirm by an SMS reply (a signed Twilio
webhook), see the consent active; and confirm through the link's button. Skipped, saying
why, where /usr/bin/chromium is not installed (`apt-get install -y chromium`; .ci/run does).
"""

import re
import urllib.parse

import pytest
import requests

from consent.models import ConsentStatus, Message
from consent.signatures import twilio_signature
from tests.browser import BROWSER_MARKS
from tests.browser import browser_page as open_browser_page

PHONE = "+14155550123"
TWILIO_TOKEN = "browser-test-twilio-token"

pytestmark = BROWSER_MARKS


@pytest.fixture
def live(live_server, settings):
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    return live_server


@pytest.fixture
def browser_page(monkeypatch):
    yield from open_browser_page(monkeypatch, user_agent="Mozilla/5.0 (browser test) Chromium")


def sms_reply(live, text, sid):
    """A signed Twilio inbound webhook, as if the person replied from their handset."""
    path = "/webhooks/twilio/inbound/"
    form = {"MessageSid": sid, "From": PHONE, "To": "+14155550199", "Body": text, "NumMedia": "0",
            "AccountSid": "AC00000000000000000000000000000000"}
    from django.conf import settings

    signature = twilio_signature(TWILIO_TOKEN, settings.PUBLIC_BASE_URL + path, form)
    response = requests.post(live.url + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert response.status_code == 200, response.text
    return response


def fill_form(page, live, topic, phone=PHONE, tick=True):
    page.goto(f"{live.url}/optin/{topic.slug}/")
    assert topic.current_text.consent_text in page.inner_text("#consent-text")
    assert not page.is_checked("input[name=consent]")
    page.fill("input[name=phone]", phone)
    if tick:
        page.check("input[name=consent]")
    page.click("button[type=submit]")


def test_subscribe_in_the_browser_then_confirm_by_sms_reply(topic, browser_page, live):
    page = browser_page
    fill_form(page, live, topic)
    assert "If +1 ••• 0123 can receive messages, we have sent it a confirmation" in page.inner_text("#requested")
    consent = topic.consents.get()
    assert consent.status == ConsentStatus.PENDING
    event = consent.contact.events.get(kind="requested")
    assert event.evidence["user_agent"] == "Mozilla/5.0 (browser test) Chromium"
    assert event.evidence["ip"] == "127.0.0.1"
    assert Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT).status == Message.Status.SENT

    sms_reply(live, "Yes", "SMbrowser0000000000000000000000001")
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert Message.objects.filter(kind=Message.Kind.CONFIRMED_REPLY).count() == 1


def test_confirm_through_the_link_needs_the_button(topic, browser_page, live, outbox):
    page = browser_page
    fill_form(page, live, topic)
    link = re.search(r"https?://\S+/optin/confirm/\S+/", outbox.sent[-1].body).group(0)  # what the handset got
    page.goto(live.url + urllib.parse.urlsplit(link).path)  # the link, served by the live server
    assert page.is_visible("#confirm-button")
    assert topic.consents.get().status == ConsentStatus.PENDING  # opening the link changed nothing
    page.click("#confirm-button")
    assert "now subscribed" in page.inner_text("#confirmed")
    assert topic.consents.get().status == ConsentStatus.ACTIVE


def test_errors_are_shown_on_the_page(topic, browser_page, live):
    page = browser_page
    fill_form(page, live, topic, phone="12", tick=False)
    assert page.is_visible("#phone-error")
    assert "Tick the box" in page.inner_text("#consent-error")
    assert not topic.consents.exists()
