"""The care inbox page in the staff UI: open conversations first, oldest unanswered on top, reply,
assign, record a revocation, close; agents and admins only."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from consent import services
from consent.models import ConsentStatus, Conversation, ConversationReply, Message, Source
from tests.prompts import deliver_prompts

from .test_care_webhooks import whatsapp_text

pytestmark = pytest.mark.django_db

INBOX = "/admin/consent/conversation/inbox/"


@pytest.fixture
def agent_browser(client, make_user):
    user, _ = make_user("agent", "ada")
    client.force_login(user)
    return client


def test_an_agent_answers_the_oldest_open_conversation_and_closes_it(agent_browser, whatsapp_post, topic,
                                                                      run_on_commit, outbox):
    with time_machine.travel(timezone.now() - timedelta(hours=1)):
        whatsapp_post(whatsapp_text("Oldest question", phone="+33612345601"))
    whatsapp_post(whatsapp_text("Newer question", phone="+33612345602"))
    oldest = Conversation.objects.get(contact__phone="+33612345601")

    page = agent_browser.get(INBOX)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("+33612345601") < html.index("+33612345602")
    assert "Oldest question" in html and "closes in" in html  # the oldest is shown first, with its window
    key = page.context["form"].initial["idempotency_key"]

    for _ in range(2):  # a double submit sends one reply
        with run_on_commit():
            done = agent_browser.post(INBOX, {"conversation": oldest.pk, "action": "reply", "body": "On its way.",
                                              "idempotency_key": key})
        assert done.status_code == 302
    reply = ConversationReply.objects.get()
    assert reply.author == "user:ada" and reply.message.status == Message.Status.SENT
    assert agent_browser.post(INBOX, {"conversation": oldest.pk, "action": "assign"}).status_code == 302
    assert agent_browser.post(INBOX, {"conversation": oldest.pk, "action": "close"}).status_code == 302
    oldest.refresh_from_db()
    assert oldest.status == "closed" and oldest.assigned_to.username == "ada" and oldest.first_response_at

    html = agent_browser.get(INBOX).content.decode()
    assert html.index("+33612345602") < html.index("+33612345601")  # open ones first


def test_revocation_recorded_from_the_conversation(agent_browser, whatsapp_post, topic):
    result = services.optin_request(phone="+33612345601", topic=topic, channel="whatsapp", source=Source.API,
                                    evidence={})
    deliver_prompts(contact=result.consent.contact, topic=topic, channel="whatsapp")
    services.optin_confirm_by_reply(contact=result.consent.contact, channel="whatsapp", source=Source.API)
    whatsapp_post(whatsapp_text("Where is my parcel?", phone="+33612345601"))
    conversation = Conversation.objects.get()
    assert "active" in agent_browser.get(f"{INBOX}?c={conversation.pk}").content.decode()
    agent_browser.post(INBOX, {"conversation": conversation.pk, "action": "revoke"})
    result.consent.refresh_from_db()
    assert result.consent.status == ConsentStatus.REVOKED
    event = result.consent.contact.events.order_by("-seq").first()
    assert event.evidence["via"] == "conversation" and event.actor == "user:ada"


def test_outside_the_window_the_page_offers_the_template(agent_browser, whatsapp_post):
    whatsapp_post(whatsapp_text("Hello"))
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        html = agent_browser.get(INBOX).content.decode()
    assert "Send the care template" in html and 'value="reply"' not in html


def test_other_roles_cannot_open_the_inbox(client, make_user):
    user, _ = make_user("marketer")
    client.force_login(user)
    assert client.get(INBOX).status_code == 403
    assert client.post(INBOX, {"conversation": "1", "action": "close"}).status_code == 403


def test_bad_posts_never_500(agent_browser, whatsapp_post):
    whatsapp_post(whatsapp_text("Hello"))
    pk = Conversation.objects.get().pk
    for data in ({}, {"conversation": "x"}, {"conversation": pk, "action": "nope"},
                 {"conversation": pk, "action": "reply", "body": ""},
                 {"conversation": pk, "action": "reply", "body": "x" * 1601, "idempotency_key": "k"}):
        assert agent_browser.post(INBOX, data).status_code == 302
    assert agent_browser.get(INBOX + "?c=abc").status_code == 200
    assert not Message.objects.filter(kind=Message.Kind.REPLY).exists()
