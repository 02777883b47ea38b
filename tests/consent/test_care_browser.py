"""The care inbox in a real headless Chromium: an agent signs in, answers the oldest open conversation
and closes it. Skipped, saying why, where /usr/bin/chromium is not installed (tests/browser.py)."""

import time

import pytest
import requests

from consent.models import Conversation, ConversationReply
from consent.signatures import whatsapp_signature
from tests.browser import BROWSER_MARKS
from tests.browser import browser_page as open_browser_page
from tests.consent.webhooks.test_care_webhooks import whatsapp_text

SECRET = "browser-test-whatsapp-secret"

pytestmark = BROWSER_MARKS


@pytest.fixture
def browser_page(monkeypatch):
    yield from open_browser_page(monkeypatch, user_agent="Mozilla/5.0 (browser test) Chromium")


def whatsapp_in(live, text, phone):
    body = whatsapp_text(text, phone=phone)
    response = requests.post(live.url + "/webhooks/whatsapp/", data=body, timeout=10,
                             headers={"Content-Type": "application/json",
                                      "X-Hub-Signature-256": whatsapp_signature(SECRET, body)})
    assert response.status_code == 200, response.text


def test_an_agent_answers_the_oldest_open_conversation_and_closes_it(live_server, settings, make_user,
                                                                      browser_page):
    settings.WHATSAPP_APP_SECRET = SECRET
    user, _ = make_user("agent", "ada")
    user.set_password("a long agent password")
    user.save()
    whatsapp_in(live_server, "Oldest question", "+33612345601")
    time.sleep(0.01)
    whatsapp_in(live_server, "Newer question", "+33612345602")

    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/consent/conversation/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "a long agent password")
    page.click("input[type=submit]")
    page.wait_for_selector("#thread")
    assert "Oldest question" in page.inner_text("#thread")  # the oldest unanswered is opened first
    assert page.inner_text("#conversations li").startswith("+33612345601")

    page.fill("#reply-form textarea", "It left the warehouse today.")
    page.click("#reply-form button[value=reply]")
    page.wait_for_selector("text=Reply queued.")
    assert "It left the warehouse today." in page.inner_text("#thread")
    page.click("button[value=close]")
    page.wait_for_selector("text=Conversation closed.")

    oldest = Conversation.objects.get(contact__phone="+33612345601")
    assert oldest.status == Conversation.Status.CLOSED and oldest.first_response_at is not None
    assert ConversationReply.objects.get().author == "user:ada"
