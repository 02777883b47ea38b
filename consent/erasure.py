"""Erasure without losing proof: the number and personal attributes go, the ledger stays.

Ledger events hold only the keyed pseudonym of the number, so they are kept untouched and the
chain still verifies. A suppression entry (also by pseudonym) makes sure a later import or opt-in
of the same number is refused, and an `erased` event records who erased it and when.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from . import services
from .ledger import event_append
from .models import Consent, ConsentEvent, Contact, EventKind, InboundReceipt, Source, Suppression


@dataclass
class ErasureResult:
    contact: Contact
    event: ConsentEvent | None  # None when the contact had already been erased
    revoked: int
    events_kept: int


@transaction.atomic
def contact_erase(*, contact: Contact, actor: str, reason: str = "", now: datetime | None = None,
                  source: str = Source.ADMIN) -> ErasureResult:
    """Erase a contact's number and attributes, revoke what is open, suppress and record it (idempotent).

    `source` is the ledger's: `admin` for a person's request, `system` for the retention sweep.
    """
    now = now or timezone.now()
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    if contact.erased_at is not None:
        return ErasureResult(contact=contact, event=None, revoked=0,
                             events_kept=ConsentEvent.objects.filter(contact=contact).count())
    revoked = 0
    open_channels = (Consent.objects.filter(contact=contact, status__in=services.OPEN_STATUSES)
                     .values_list("channel", flat=True).distinct())
    for channel in sorted(set(open_channels)):
        revoked += len(services.consent_revoke(contact=contact, channel=channel, source=source, actor=actor,
                                               reason="erasure", now=now))
    Suppression.objects.get_or_create(phone_pseudonym=contact.phone_pseudonym,
                                      defaults={"reason": "erased", "detail": reason[:255]})
    # The webhooks' receipts hold the number and the texts; those applied go (one still waiting is applied
    # first, against the erased contact, and goes with the receipts' daily upkeep).
    InboundReceipt.objects.filter(sender=contact.phone, applied_at__isnull=False).delete()
    contact.phone = None
    contact.attributes = {}
    contact.country = ""
    contact.timezone = "UTC"
    contact.timezones = []
    contact.whatsapp_window_until = None
    contact.erased_at = now
    contact.save(update_fields=["phone", "attributes", "country", "timezone", "timezones", "whatsapp_window_until",
                                "erased_at"])
    evidence = {"reason": reason[:500], "suppressed": True, "consents_revoked": revoked}
    event = event_append(kind=EventKind.ERASED, contact=contact, source=source, actor=actor,
                         evidence=evidence, occurred_at=now)
    return ErasureResult(contact=contact, event=event, revoked=revoked,
                         events_kept=ConsentEvent.objects.filter(contact=contact).count())


