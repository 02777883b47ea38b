"""Fixtures for broadcast tests: consented audiences and a fast, deterministic send path."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from consent import services as consent_services
from consent.ledger import event_append
from consent.models import Consent, ConsentStatus, EventKind, Source


@pytest.fixture(autouse=True)
def _broadcast_settings(settings):
    """Sends in the test thread (so a fake provider may touch the test database), no throttle."""
    settings.BROADCAST_SEND_CONCURRENCY = 1
    settings.BROADCAST_RATE_LIMITS = {}
    settings.BROADCAST_CLAIM_SIZE = 4
    settings.BROADCAST_BATCH_SIZE = 10
    settings.BROADCAST_ERROR_RATE_MIN_SAMPLE = 100
    settings.BROADCAST_UNKNOWN_AFTER_SECONDS = 120
    settings.BROADCAST_STALL_SECONDS = 60


def phone_for(i: int, country: str = "US") -> str:
    return f"+1212555{i:04d}" if country == "US" else f"+33612{i:06d}"


@pytest.fixture
def consented(db):
    """consented(n, topic, channel="sms", country="US", attributes=None) -> contacts with a current consent."""

    def make(n, topic, channel="sms", country="US", attributes=None, start=0):
        contacts = []
        now = timezone.now()
        for i in range(start, start + n):
            contact = consent_services.contact_get_or_create(phone=phone_for(i, country), attributes=attributes)
            with transaction.atomic():  # as an import would: the ledger event, and the consent pointing at it
                event = event_append(kind=EventKind.IMPORTED, contact=contact, topic=topic, channel=channel,
                                     source=Source.IMPORT, actor="system", text=topic.current_text,
                                     evidence={"fixture": "consented"}, occurred_at=now - timedelta(days=1))
                Consent.objects.update_or_create(
                    contact=contact, topic=topic, channel=channel,
                    defaults={"status": ConsentStatus.ACTIVE, "text": topic.current_text, "source": Source.IMPORT,
                              "confirmed_at": now - timedelta(days=1), "expires_at": now + timedelta(days=300),
                              "current_event": event},
                )
            contacts.append(contact)
        return contacts

    return make
