"""The current-state projection rebuilt from the ledger alone (test oracle, independent of services).

replay(events) -> {(contact_id, topic_id, channel): ConsentState}; contact-level facts (erased,
suppressed) come back in a second mapping. Only the ledger is read: if the Consent rows ever
disagree with this, a service changed state without writing the event that explains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from consent.models import ConsentEvent, ConsentStatus, EventKind, Topic


@dataclass
class ConsentState:
    status: str
    requested_at: datetime | None = None
    confirm_by: datetime | None = None
    confirmed_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    prompted_at: datetime | None = None

    def is_current(self, at: datetime) -> bool:
        return self.status == ConsentStatus.ACTIVE and (self.expires_at is None or self.expires_at > at)


@dataclass
class ContactFacts:
    erased: bool = False
    suppressed: bool = False


def replay(events=None):
    ttl = {t.pk: t.consent_ttl_days for t in Topic.objects.all()}
    window = timedelta(hours=settings.CONSENT_CONFIRMATION_WINDOW_HOURS)
    states: dict[tuple, ConsentState] = {}
    contacts: dict[int, ContactFacts] = {}
    events = ConsentEvent.objects.order_by("seq") if events is None else events
    for event in events:
        facts = contacts.setdefault(event.contact_id, ContactFacts())
        if event.kind == EventKind.ERASED:
            facts.erased = True
            continue
        if event.kind == EventKind.SUPPRESSED:
            facts.suppressed = True
            continue
        key = (event.contact_id, event.topic_id, event.channel)
        at = event.occurred_at
        days = ttl.get(event.topic_id)
        state = states.get(key)
        if event.kind == EventKind.REQUESTED:
            states[key] = ConsentState(ConsentStatus.PENDING, requested_at=at, confirm_by=at + window,
                                       prompted_at=state.prompted_at if state else None)
        elif event.kind == EventKind.CONFIRMED:
            if (event.evidence or {}).get("method") != "confirmation_link":  # a YES: only after its prompt left
                assert state.prompted_at is not None and state.prompted_at >= state.requested_at, (
                    f"seq {event.seq}: a reply confirmed a consent whose prompt was never handed over")
            state.status, state.confirmed_at = ConsentStatus.ACTIVE, at
            state.expires_at = at + timedelta(days=days) if days else None
        elif event.kind == EventKind.IMPORTED:
            states[key] = ConsentState(ConsentStatus.ACTIVE, confirmed_at=at,
                                       expires_at=at + timedelta(days=days) if days else None,
                                       prompted_at=state.prompted_at if state else None)
        elif event.kind == EventKind.REVOKED:
            state.status, state.revoked_at = ConsentStatus.REVOKED, at
        elif event.kind == EventKind.EXPIRED:
            state.status = ConsentStatus.EXPIRED
        elif event.kind == EventKind.CONFIRMATION_SENT:
            if state is not None and state.status == ConsentStatus.PENDING:
                state.prompted_at = at  # what a YES may confirm: a prompt handed over
        else:  # a new kind of event must teach this oracle what it means
            raise AssertionError(f"replay does not know the event kind {event.kind!r} (seq {event.seq})")
    return states, contacts


def stored_states():
    from consent.models import Consent

    return {
        (c.contact_id, c.topic_id, c.channel): ConsentState(c.status, c.requested_at, c.confirm_by, c.confirmed_at,
                                                            c.expires_at, c.revoked_at, c.prompted_at)
        for c in Consent.objects.all()
    }
