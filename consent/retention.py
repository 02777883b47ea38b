"""Retention: the personal data of a contact who has had no current consent and sent nothing for
CONSENT_RETENTION_DAYS (default 1095: CNIL keeps prospects' data 3 years from the last contact coming
from them) is erased by the one erasure service, so the ledger and its proof stay (pseudonymous, the
chain still verifying) and the number stays suppressed.

"From them" is an inbound message, or a ledger event their own action made (an opt-in request, a
confirmation, a revocation) or an import of their earlier consent; system events such as expiries
do not extend retention. A contact created within the period is kept whatever else holds.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, Max, OuterRef, Subquery
from django.utils import timezone

from .erasure import contact_erase
from .hashing import format_instant
from .models import Consent, ConsentEvent, Contact, EventKind, Message, Source

# Ledger events that count as contact coming from the person (or, for imports, their earlier consent).
FROM_THE_PERSON = (EventKind.REQUESTED, EventKind.CONFIRMED, EventKind.REVOKED, EventKind.IMPORTED)
RETENTION_ACTOR = "system:retention"


@dataclass(frozen=True)
class RetentionCandidate:
    contact_id: int
    subject: str  # the pseudonym: the number itself is what is about to go
    created_at: datetime
    last_contact_at: datetime | None
    reason: str

    def as_dict(self) -> dict:
        return {"contact_id": self.contact_id, "subject": self.subject, "created_at": format_instant(self.created_at),
                "last_contact_at": format_instant(self.last_contact_at) if self.last_contact_at else None,
                "reason": self.reason}


def retention_candidates(*, now: datetime | None = None, days: int | None = None, limit: int | None = None):
    """Contacts due for erasure at `now`, oldest first, each with why (a selector: reads only)."""
    now = now or timezone.now()
    days = settings.CONSENT_RETENTION_DAYS if days is None else days
    cutoff = now - timedelta(days=days)
    inbound = Message.objects.filter(contact=OuterRef("pk"), direction=Message.Direction.INBOUND)
    theirs = ConsentEvent.objects.filter(contact=OuterRef("pk"), kind__in=FROM_THE_PERSON)
    contacts = (Contact.objects.filter(erased_at__isnull=True, created_at__lt=cutoff)
                .exclude(Exists(Consent.objects.current(now).filter(contact=OuterRef("pk"))))
                .exclude(Exists(inbound.filter(created_at__gte=cutoff)))
                .exclude(Exists(theirs.filter(occurred_at__gte=cutoff)))
                .annotate(last_inbound=Subquery(inbound.order_by().values("contact").annotate(m=Max("created_at"))
                                                .values("m")[:1]),
                          last_event=Subquery(theirs.order_by().values("contact").annotate(m=Max("occurred_at"))
                                              .values("m")[:1]))
                .order_by("id"))
    if limit is not None:
        contacts = contacts[:limit]
    for contact in contacts.iterator(chunk_size=2000):
        last = max((t for t in (contact.last_inbound, contact.last_event) if t is not None), default=None)
        since = f"last contact from them {format_instant(last)}" if last else "nothing ever came from them"
        yield RetentionCandidate(
            contact_id=contact.pk, subject=contact.phone_pseudonym, created_at=contact.created_at, last_contact_at=last,
            reason=f"no current consent; {since}; kept {days} days (CONSENT_RETENTION_DAYS), now past")


def retention_erase(*, now: datetime | None = None, days: int | None = None, limit: int | None = None) -> list:
    """Erase every contact due (each in its own transaction, through the erasure service); returns what went."""
    now = now or timezone.now()
    erased = []
    for candidate in list(retention_candidates(now=now, days=days, limit=limit)):
        contact = Contact.objects.get(pk=candidate.contact_id)
        result = contact_erase(contact=contact, actor=RETENTION_ACTOR, reason=f"retention: {candidate.reason}"[:500],
                               now=now, source=Source.SYSTEM)
        if result.event is not None:
            erased.append(candidate)
    return erased
