"""The preference centre (rule 17 of docs/design.md): what one number has on one channel, and one press
to withdraw a topic or all of them, or to ask again for a topic (which starts a double opt-in).

The link (`outbox.preference_link`, in every HELP reply) is signed, scoped to one contact and channel,
and expires; opening it reads, only a POST of the page's buttons changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from . import services
from .models import Channel, Consent, ConsentStatus, Contact, Source, Topic
from .outbox import PREFERENCE_SALT
from .selectors import effective_status

MAX_TOPICS = 100


class PreferenceLinkError(Exception):
    """The link is not one we made, is too old, or its number is gone."""


@dataclass(frozen=True)
class Subject:
    contact: Contact
    channel: str


@dataclass(frozen=True)
class TopicPreference:
    topic: Topic
    status: str  # a consent status, or "none" for a topic the person never asked for on this channel
    since: datetime | None

    @property
    def subscribed(self) -> bool:
        return self.status in (ConsentStatus.PENDING, ConsentStatus.ACTIVE)


def preference_subject(token: str) -> Subject:
    """The contact and channel a link is for, or PreferenceLinkError saying why not."""
    if not isinstance(token, str) or len(token) > 300:
        raise PreferenceLinkError("This link is not valid.")
    max_age = settings.CONSENT_PREFERENCE_LINK_MAX_AGE_DAYS * 86400
    try:
        data = signing.loads(token, salt=PREFERENCE_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise PreferenceLinkError("This link has expired. Text HELP to get a new one.") from None
    except signing.BadSignature:
        raise PreferenceLinkError("This link is not valid.") from None
    if not isinstance(data, dict) or data.get("ch") not in Channel.values or not isinstance(data.get("c"), int):
        raise PreferenceLinkError("This link is not valid.")
    contact = Contact.objects.filter(pk=data["c"]).first()
    if contact is None or contact.phone is None or contact.phone_pseudonym[:16] != data.get("p"):
        raise PreferenceLinkError("This link is no longer valid.")
    return Subject(contact=contact, channel=data["ch"])


def preferences_list(*, subject: Subject, now: datetime | None = None) -> list[TopicPreference]:
    """Every topic with the person's state on the link's channel (`none` where they never asked)."""
    now = now or timezone.now()
    consents = {c.topic_id: c for c in Consent.objects.filter(contact=subject.contact, channel=subject.channel)}
    items = []
    for topic in Topic.objects.filter(current_text__isnull=False).order_by("name", "slug")[:MAX_TOPICS]:
        consent = consents.get(topic.pk)
        if consent is None:
            items.append(TopicPreference(topic, "none", None))
            continue
        status = effective_status(consent, now)
        since = {ConsentStatus.ACTIVE: consent.confirmed_at, ConsentStatus.PENDING: consent.requested_at,
                 ConsentStatus.REVOKED: consent.revoked_at}.get(status, consent.expires_at or consent.updated_at)
        items.append(TopicPreference(topic, status, since))
    return items


@transaction.atomic
def preferences_withdraw(*, subject: Subject, evidence: dict, topic: Topic | None = None,
                         now: datetime | None = None) -> list[Consent]:
    """Withdraw one topic (or every topic) on the link's channel at once, source `preference_centre`,
    and send the one confirmation a revocation gets (services.revocation_confirmation_queue)."""
    now = now or timezone.now()
    contact = subject.contact
    revoked = services.consent_revoke(contact=contact, channel=subject.channel, source=Source.PREFERENCE_CENTRE,
                                      topic=topic, reason="preference centre", evidence=evidence, now=now)
    if revoked:
        # The one confirmation every revocation gets (on WhatsApp outside the window: recorded as skipped).
        services.revocation_confirmation_queue(contact=contact, channel=subject.channel, topic=topic,
                                               revoked=[consent.topic for consent in revoked], now=now)
    return revoked


def preferences_subscribe(*, subject: Subject, topic: Topic, evidence: dict,
                          now: datetime | None = None) -> services.OptinResult:
    """Ask again for a topic: a double opt-in like any other (the prompt, then YES or the link)."""
    return services.optin_request(phone=subject.contact.phone, topic=topic, channel=subject.channel,
                                  source=Source.PREFERENCE_CENTRE, evidence=evidence, now=now)
