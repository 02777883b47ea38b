"""Care fixtures: a person's care message as a verified webhook applies it, and an agent's API client."""

import itertools
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from consent import inbound
from consent.ledger import event_append
from consent.models import Consent, ConsentStatus, Conversation, EventKind, Source
from consent.webhooks.parsers import InboundMessage

WA_PHONE = "+33612345678"
_ids = itertools.count(1)


@pytest.fixture
def care_message(db):
    """care_message(text, phone=WA_PHONE, channel="whatsapp") -> the conversation the message opened or continued."""

    def send(text, *, phone=WA_PHONE, channel="whatsapp"):
        message = InboundMessage(channel=channel, provider_message_id=f"wamid.care{next(_ids)}", sender=phone, text=text)
        inbound.inbound_message_receive(message=message, provider="twilio" if channel == "sms" else "whatsapp_cloud")
        return Conversation.objects.get(contact__phone=phone, channel=channel)

    return send


@pytest.fixture
def agent(make_user):
    """An agent (user "ada") and an API client with its token."""
    user, token = make_user("agent", "ada")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    client.user = user
    return client


@pytest.fixture
def consented_whatsapp(topic):
    """consented_whatsapp(contact) -> its active WhatsApp consent to `topic`, backed by a ledger event."""
    def make(contact):
        now = timezone.now()
        with transaction.atomic():
            event = event_append(kind=EventKind.IMPORTED, contact=contact, topic=topic, channel="whatsapp",
                                 source=Source.IMPORT, actor="system", text=topic.current_text,
                                 evidence={"fixture": "consented_whatsapp"}, occurred_at=now - timedelta(days=1))
            consent, _ = Consent.objects.update_or_create(
                contact=contact, topic=topic, channel="whatsapp",
                defaults={"status": ConsentStatus.ACTIVE, "text": topic.current_text, "source": Source.IMPORT,
                          "confirmed_at": now - timedelta(days=1), "expires_at": now + timedelta(days=300),
                          "current_event": event})
        return consent

    return make
