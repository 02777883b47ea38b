"""Customer care end to end through signed webhooks: a question opens a conversation, an agent's reply
goes out once through the provider API inside the platform's rules, and is refused (409) outside them."""

import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from consent import services
from consent.models import Conversation, ConversationReply, Message, Source
from tests.prompts import deliver_prompts

from .payloads import twilio_form

pytestmark = pytest.mark.django_db

WA_PHONE = "+33612345678"
SMS_PHONE = "+14155550123"
_ids = iter(range(1, 10**6))


def whatsapp_text(text, phone=WA_PHONE):
    wa_id = phone[1:]
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550000000", "phone_number_id": "123"},
            "contacts": [{"profile": {"name": "A"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": f"wamid.care{next(_ids)}", "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": text}}]}}]}]}).encode()


def sms_in(twilio_post, body, settings, phone=SMS_PHONE):
    sid = f"SM{next(_ids):032d}"
    form = twilio_form("twilio_inbound_stop.txt", Body=body, MessageSid=sid, SmsMessageSid=sid, SmsSid=sid, From=phone)
    assert twilio_post("/webhooks/twilio/inbound/", form, token=settings.TWILIO_AUTH_TOKEN).status_code == 200


@pytest.fixture
def agent(make_user):
    user, token = make_user("agent", "ada")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def reply(agent, conversation, key=None, **data):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return agent.post(f"/api/v1/conversations/{conversation.pk}/reply/", data, format="json", **headers)


def test_whatsapp_question_opens_a_conversation_and_the_reply_reaches_the_provider_once(
        whatsapp_post, use_stand_in, agent, run_on_commit):
    assert whatsapp_post(whatsapp_text("Where is my order 1234?")).status_code == 200
    conversation = Conversation.objects.get()
    assert (conversation.channel, conversation.status, conversation.contact.phone) == ("whatsapp", "open", WA_PHONE)
    assert conversation.waiting_since is not None

    listed = agent.get("/api/v1/conversations/?status=open").json()["results"]
    assert [c["id"] for c in listed] == [conversation.pk]
    assert listed[0]["window_until"] is not None
    assert [m["body"] for m in listed[0]["messages"]] == ["Where is my order 1234?"]

    with run_on_commit():
        first = reply(agent, conversation, key="k-1", body="It left the warehouse today.")
    assert first.status_code == 201, first.content
    with run_on_commit():
        again = reply(agent, conversation, key="k-1", body="It left the warehouse today.")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]

    sent = use_stand_in.messages(api="whatsapp")
    assert [m["body"] for m in sent] == ["It left the warehouse today."]
    message = Message.objects.get(kind=Message.Kind.REPLY)
    assert message.status == Message.Status.SENT and message.provider_message_id == sent[0]["message_id"]
    assert ConversationReply.objects.get().author == "user:ada"

    thread = agent.get(f"/api/v1/conversations/{conversation.pk}/").json()
    assert [(m["direction"], m["author"]) for m in thread["messages"]] == [("in", None), ("out", "user:ada")]
    assert thread["messages"][1]["status"] == "sent"
    assert thread["waiting_since"] is None and thread["first_response_seconds"] is not None


def test_after_the_window_a_free_form_reply_is_409_and_the_template_goes(whatsapp_post, use_stand_in, agent,
                                                                           run_on_commit, settings):
    assert whatsapp_post(whatsapp_text("Can I change my address?")).status_code == 200
    conversation = Conversation.objects.get()
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        refused = reply(agent, conversation, body="Yes, send it to us.")
        assert refused.status_code == 409
        assert refused.json()["reason"] == "whatsapp_window_closed" and refused.json()["template_offered"] is True
        assert not Message.objects.filter(kind=Message.Kind.REPLY).exists()
        with run_on_commit():
            templated = reply(agent, conversation, template=True)
        assert templated.status_code == 201, templated.content
    sent = use_stand_in.messages(api="whatsapp")
    assert len(sent) == 1 and sent[0]["template"]["name"] == settings.WHATSAPP_CARE_TEMPLATE


def test_an_sms_reply_after_stop_is_409_until_start(twilio_post, use_stand_in, agent, run_on_commit, settings):
    sms_in(twilio_post, "Do you deliver on Sundays?", settings)
    conversation = Conversation.objects.get(channel="sms")
    sms_in(twilio_post, "STOP", settings)
    refused = reply(agent, conversation, body="We do.")
    assert refused.status_code == 409 and refused.json()["reason"] == "sms_number_stopped"
    sms_in(twilio_post, "HELP", settings)  # HELP neither blocks nor unblocks
    assert reply(agent, conversation, body="We do.").status_code == 409
    sms_in(twilio_post, "START", settings)
    with run_on_commit():
        assert reply(agent, conversation, body="We do.").status_code == 201
    assert [m["body"] for m in use_stand_in.messages(to=SMS_PHONE, api="twilio") if m["body"] == "We do."] == ["We do."]


def test_closing_and_a_new_message_reopening(whatsapp_post, agent):
    whatsapp_post(whatsapp_text("Hello?"))
    conversation = Conversation.objects.get()
    closed = agent.post(f"/api/v1/conversations/{conversation.pk}/close/")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert agent.get("/api/v1/conversations/?status=open").json()["results"] == []
    whatsapp_post(whatsapp_text("Still there?"))
    conversation.refresh_from_db()
    assert conversation.status == "open" and Conversation.objects.count() == 1
    mine = agent.post(f"/api/v1/conversations/{conversation.pk}/assign/")
    assert mine.json()["assigned_to"] == "ada"


def test_oldest_unanswered_first(whatsapp_post, agent):
    with time_machine.travel(timezone.now() - timedelta(hours=2)):
        whatsapp_post(whatsapp_text("First", phone="+33612345601"))
    whatsapp_post(whatsapp_text("Second", phone="+33612345602"))
    listed = agent.get("/api/v1/conversations/").json()["results"]
    assert [c["phone"] for c in listed] == ["+33612345601", "+33612345602"]


def test_a_keyword_opens_no_conversation(twilio_post, settings, webhook_settings):
    sms_in(twilio_post, "HELP", settings)
    assert not Conversation.objects.exists()


def test_the_agent_role_is_refused_everywhere_else(agent, role_client, topic, whatsapp_post):
    for path in ("/api/v1/topics/", "/api/v1/broadcasts/", "/api/v1/audit/events/", "/api/v1/contacts/",
                 "/api/v1/messages/"):
        assert agent.get(path).status_code == 403, path
    assert agent.post("/api/v1/broadcasts/", {}, format="json").status_code == 403
    assert role_client("marketer").get("/api/v1/conversations/").status_code == 403
    assert role_client("auditor").get("/api/v1/conversations/").status_code == 403
    whatsapp_post(whatsapp_text("Please note my new number"))
    revoke = {"phone": WA_PHONE, "channel": "whatsapp"}
    assert agent.post("/api/v1/consents/revoke/", revoke, format="json").status_code == 403
    assert agent.post("/api/v1/consents/revoke/", {**revoke, "via": "email"}, format="json").status_code == 403
    assert agent.post("/api/v1/consents/revoke/", {**revoke, "via": "conversation"}, format="json").status_code == 200


@pytest.mark.parametrize("data", [{}, {"body": ""}, {"body": "x" * 1601}, {"body": "a", "template": True},
                                  {"template": "yes please"}, []])
def test_bad_reply_input_is_400(whatsapp_post, agent, data):
    whatsapp_post(whatsapp_text("Hi"))
    response = reply(agent, Conversation.objects.get(), **({} if isinstance(data, list) else data))
    assert response.status_code == 400


def test_a_template_on_sms_is_400_and_a_long_key_too(twilio_post, settings, webhook_settings, agent):
    sms_in(twilio_post, "Question", settings)
    conversation = Conversation.objects.get()
    assert reply(agent, conversation, template=True).status_code == 400
    assert reply(agent, conversation, key="k" * 201, body="Hi").status_code == 400
    assert agent.post("/api/v1/conversations/999999/reply/", {"body": "x"}, format="json").status_code == 404


def test_a_text_revocation_in_a_conversation_revokes_and_the_conversation_shows_it(
        twilio_post, settings, webhook_settings, agent, topic):
    result = services.optin_request(phone=SMS_PHONE, topic=topic, channel="sms", source=Source.API, evidence={})
    deliver_prompts(contact=result.consent.contact, topic=topic, channel="sms")
    services.optin_confirm_by_reply(contact=result.consent.contact, channel="sms", source=Source.SMS_KEYWORD)
    sms_in(twilio_post, "Is my order late?", settings)
    sms_in(twilio_post, "pls stop txting me", settings)
    conversation = agent.get("/api/v1/conversations/?status=open").json()["results"][0]
    assert [m["body"] for m in conversation["messages"]] == ["Is my order late?", "pls stop txting me"]
    assert [(c["topic"], c["status"]) for c in conversation["consents"]] == [("promo", "revoked")]
