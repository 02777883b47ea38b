"""Reads. The one definition of a *current* consent lives here and is used everywhere."""

from datetime import datetime

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from . import rows
from .models import Consent, ConsentEvent, ConsentStatus, Contact, EventKind, Suppression, Topic

# The ledger events that make a consent current, and those that end it after them.
AUTHORISING_KINDS = (EventKind.CONFIRMED, EventKind.IMPORTED)
ENDING_KINDS = (EventKind.REVOKED, EventKind.EXPIRED)


def current_consent_q(now: datetime, prefix: str = "") -> Q:
    """Q for consents that are current at `now`: active and not past `expires_at`."""
    return Q(**{f"{prefix}status": ConsentStatus.ACTIVE}) & (
        Q(**{f"{prefix}expires_at__isnull": True}) | Q(**{f"{prefix}expires_at__gt": now})
    )


def consent_is_current(consent: Consent, now: datetime | None = None) -> bool:
    """Whether this consent row allows promotional messages at `now`."""
    now = now or timezone.now()
    return consent.status == ConsentStatus.ACTIVE and (consent.expires_at is None or consent.expires_at > now)


def effective_status(consent: Consent, now: datetime | None = None) -> str:
    """The status a reader should see: an active consent past its lifetime reads as expired."""
    now = now or timezone.now()
    if consent.status == ConsentStatus.ACTIVE and not consent_is_current(consent, now):
        return ConsentStatus.EXPIRED
    if consent.status == ConsentStatus.PENDING and consent.confirm_by and consent.confirm_by < now:
        return ConsentStatus.EXPIRED
    return consent.status


def not_suppressed_q(prefix: str = "") -> Q:
    """Q for contacts that may be messaged at all (not erased, not on the suppression list)."""
    suppressed = Suppression.objects.filter(phone_pseudonym=OuterRef(f"{prefix}phone_pseudonym"))
    return Q(**{f"{prefix}erased_at__isnull": True}) & ~Q(Exists(suppressed))


def is_suppressed(pseudonym: str) -> bool:
    # Asked on every inbound keyword: plain SQL, no query compilation (see consent.rows).
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM consent_suppression WHERE phone_pseudonym = %s", [pseudonym])
        return cursor.fetchone() is not None


def contact_by_pseudonym(pseudonym: str) -> Contact | None:
    """The contact with this pseudonym; `suppressed_when_read` tells whether it was on the suppression list then."""
    found = rows.fetch(
        f"SELECT {rows.columns(Contact, 'c')}, EXISTS (SELECT 1 FROM consent_suppression s "
        "WHERE s.phone_pseudonym = c.phone_pseudonym) FROM consent_contact c WHERE c.phone_pseudonym = %s",
        [pseudonym], (Contact,),
    )
    if not found:
        return None
    contact, suppressed = found[0]
    contact.suppressed_when_read = bool(suppressed)
    return contact


def authorising_event_seq() -> Subquery:
    """The seq of the consent's pointer when that is a confirmed or imported event of its own contact,
    topic and channel with no revocation, expiry or erasure of it later in the ledger; else null."""
    ended = ConsentEvent.objects.filter(contact_id=OuterRef("contact_id"), seq__gt=OuterRef("seq")).filter(
        Q(kind__in=ENDING_KINDS, topic_id=OuterRef("topic_id"), channel=OuterRef("channel")) | Q(kind=EventKind.ERASED)
    )
    authorising = ConsentEvent.objects.filter(
        pk=OuterRef("current_event_id"), contact_id=OuterRef("contact_id"), topic_id=OuterRef("topic_id"),
        channel=OuterRef("channel"), kind__in=AUTHORISING_KINDS,
    ).exclude(Exists(ended))
    return Subquery(authorising.values("seq")[:1])


def _may_be_sent(consents: QuerySet[Consent], now: datetime) -> QuerySet[Consent]:
    suppressed = Suppression.objects.filter(phone_pseudonym=OuterRef("contact__phone_pseudonym"))
    # No event, no send. A scalar subquery, not EXISTS or a join: PostgreSQL would turn those into a
    # join on these equal columns, multiply their selectivities, and sort the whole audience.
    return (
        consents.filter(current_consent_q(now))
        .alias(authorising_seq=authorising_event_seq())
        .filter(authorising_seq__isnull=False)
        .filter(contact__erased_at__isnull=True)
        .exclude(Exists(suppressed))
    )


def audience_consents(*, topic: Topic, channel: str, now: datetime | None = None) -> QuerySet[Consent]:
    """Consents of `topic` on `channel` that are current at `now` and backed by the ledger, for
    contacts that may be messaged.

    This is the audience of a broadcast; the send-time gate asks the same question per contact.
    """
    return _may_be_sent(Consent.objects.filter(topic=topic, channel=channel), now or timezone.now())


def contact_may_receive_promotion(*, contact_id: int, topic_id: int, channel: str, now: datetime | None = None) -> bool:
    """The send-time gate for one contact: one query, the audience's own definition."""
    consents = Consent.objects.filter(contact_id=contact_id, topic_id=topic_id, channel=channel)
    return _may_be_sent(consents, now or timezone.now()).exists()


def contact_get_by_phone(e164: str) -> Contact | None:
    return Contact.objects.filter(phone=e164).first()


def contact_list(*, phone: str | None = None, topic: str | None = None, status: str | None = None, now=None) -> QuerySet[Contact]:
    """Contacts filtered by phone, and by having a consent of `topic` in `status` (effective status)."""
    now = now or timezone.now()
    qs = Contact.objects.all().order_by("id")
    if phone:
        qs = qs.filter(phone=phone)
    consent_filter = Q()
    if topic:
        consent_filter &= Q(consents__topic__slug=topic)
    if status:
        consent_filter &= _effective_status_q(status, now, prefix="consents__")
    if topic or status:
        qs = qs.filter(consent_filter).distinct()
    return qs


def _effective_status_q(status: str, now: datetime, prefix: str = "") -> Q:
    if status == ConsentStatus.ACTIVE:
        return current_consent_q(now, prefix)
    if status == ConsentStatus.EXPIRED:
        return Q(**{f"{prefix}status": ConsentStatus.EXPIRED}) | (
            Q(**{f"{prefix}status": ConsentStatus.ACTIVE}) & Q(**{f"{prefix}expires_at__lte": now})
        ) | (Q(**{f"{prefix}status": ConsentStatus.PENDING}) & Q(**{f"{prefix}confirm_by__lt": now}))
    if status == ConsentStatus.PENDING:
        return Q(**{f"{prefix}status": ConsentStatus.PENDING}) & (
            Q(**{f"{prefix}confirm_by__isnull": True}) | Q(**{f"{prefix}confirm_by__gte": now})
        )
    return Q(**{f"{prefix}status": status})


def topic_get(slug: str) -> Topic | None:
    return Topic.objects.select_related("current_text").filter(slug=slug).first()


def topics_by_keyword() -> dict[str, Topic]:
    """Upper-case topic keyword → topic."""
    mapping = {}
    for topic in Topic.objects.select_related("current_text"):
        for keyword in topic.keywords or []:
            mapping[str(keyword).upper()] = topic
    return mapping


def consents_with_status(queryset: QuerySet[Consent], *, status: str, now: datetime | None = None) -> QuerySet[Consent]:
    """The consents of `queryset` whose effective status is `status` (a pending one past its window is expired)."""
    return queryset.filter(_effective_status_q(status, now or timezone.now()))
