"""Broadcast deliveries as the audit sees them (rule 14 of docs/design.md): each promotional message
with the ledger event that authorised it, and the check that every handed-over delivery was lawful
at the instant it was claimed.

Registered with consent.audit.registry at app ready, so that the per-contact proof and
`verify_consent_log --deliveries` reach them without consent/ importing broadcasts/.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.db.models.fields.json import KT

from consent.audit.registry import MessagesReport
from consent.hashing import format_instant
from consent.models import AUTHORISING_KINDS, ENDING_KINDS, ConsentEvent, EventKind
from messaging.lifecycle import HANDED_OVER, Status

from .models import Broadcast, Delivery

# Claimed through the send-time gate and handed to the provider (a refusal is still a message the gate let go).
JUSTIFIED_STATUSES = (*HANDED_OVER, Status.FAILED)
EXPIRY_EVIDENCE = "consent_expires_at"  # as the consent services record it on confirmed and imported events


def _instant(value):
    return format_instant(value) if value else None


def deliveries_for_contact(contact_id: int) -> list[dict]:
    """Every broadcast delivery to one contact, oldest first, with its authorising event and that event's text version."""
    # One probe of the (broadcast, contact) unique index per broadcast: there is no index on the contact
    # alone (fan-out inserts a million rows at a time), and broadcasts are few.
    rows = list(Delivery.objects.filter(broadcast_id__in=Broadcast.objects.values("id"), contact_id=contact_id)
                .select_related("broadcast__topic").order_by("id"))
    seqs = {row.authorized_by for row in rows if row.authorized_by is not None}
    events = {seq: (kind, occurred, version, sha, hash_) for seq, kind, occurred, version, sha, hash_ in
              ConsentEvent.objects.filter(seq__in=seqs).values_list("seq", "kind", "occurred_at", "text_version",
                                                                    "text_sha256", "hash")}
    found = []
    for row in rows:
        event = events.get(row.authorized_by)
        found.append({
            "delivery_id": row.pk, "broadcast_id": row.broadcast_id, "broadcast": row.broadcast.name,
            "topic": row.broadcast.topic.slug, "channel": row.broadcast.channel, "status": row.status,
            "skip_reason": row.skip_reason or None, "rule": row.rule or None, "authorized_by": row.authorized_by,
            "authorising_event": None if event is None else {
                "sequence": row.authorized_by, "kind": event[0], "occurred_at": _instant(event[1]),
                "text_version": event[2], "text_sha256": event[3], "hash": event[4]},
            "claimed_at": _instant(row.claimed_at), "sent_at": _instant(row.sent_at),
            "status_at": _instant(row.status_at), "provider_message_id": row.provider_message_id,
        })
    return found


def _expiry(value) -> datetime | None | bool:
    """The consent's expiry recorded on its event: a datetime, None (never), or False (not recorded)."""
    if value is None:
        return False
    if value == "never":
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False


def _problem(delivery: tuple, topics: dict, event: tuple | None, enders: list) -> str | None:
    """Why one handed-over delivery was not justified by the ledger at its claim, or None."""
    _, broadcast_id, contact_id, authorized_by, claimed_at = delivery
    if authorized_by is None:
        return "handed over without an authorising ledger event (authorized_by is empty)"
    if claimed_at is None:
        return "handed over without a claim time"
    if event is None:
        return f"authorized_by names ledger event {authorized_by}, which does not exist"
    _, e_contact, e_topic, e_channel, e_kind, e_recorded, e_expiry = event
    topic_id, channel = topics[broadcast_id]
    if e_contact != contact_id:
        return f"ledger event {authorized_by} is of another contact"
    if (e_topic, e_channel) != (topic_id, channel):
        return f"ledger event {authorized_by} is of another topic or channel than the broadcast"
    if e_kind not in AUTHORISING_KINDS:
        return f"ledger event {authorized_by} is a {e_kind} event, which authorises nothing"
    if e_recorded > claimed_at:
        return f"ledger event {authorized_by} was recorded after the delivery was claimed"
    expiry = _expiry(e_expiry)
    if expiry and expiry <= claimed_at:
        return f"the consent of ledger event {authorized_by} had expired when the delivery was claimed"
    for seq, topic, chan, kind, recorded in enders:
        if seq > authorized_by and recorded <= claimed_at and (kind == EventKind.ERASED or (topic, chan) == (topic_id, channel)):
            return f"ledger event {seq} ({kind}) ended that consent before the delivery was claimed"
    return None


CACHE_ROWS = 500_000  # ledger rows kept between chunks (a contact's deliveries of many broadcasts share them)


def deliveries_verify(*, chunk_size: int = 10000) -> MessagesReport:
    """Every handed-over delivery points at a confirmed or imported event of its contact, topic and channel,
    recorded before its claim, not expired then, and not followed by a revocation, expiry or erasure
    recorded before the claim. Streams the deliveries by id; the ledger rows they need are read once per
    chunk and kept for the next chunks (the same contacts come back in every broadcast), within CACHE_ROWS."""
    topics = dict((pk, (topic, channel)) for pk, topic, channel in
                  Broadcast.objects.values_list("id", "topic_id", "channel"))
    handed = (Delivery.objects.filter(status__in=JUSTIFIED_STATUSES).order_by("id")
              .values_list("id", "broadcast_id", "contact_id", "authorized_by", "claimed_at"))
    events: dict[int, tuple] = {}
    enders: dict[int, list] = {}
    checked, last = 0, 0
    while True:
        chunk = list(handed.filter(id__gt=last)[:chunk_size])
        if not chunk:
            break
        last = chunk[-1][0]
        if len(events) + len(enders) > CACHE_ROWS:
            events.clear()
            enders.clear()
        seqs = {row[3] for row in chunk if row[3] is not None} - events.keys()
        if seqs:
            events.update((row[0], row) for row in ConsentEvent.objects.filter(seq__in=seqs).annotate(
                expiry=KT(f"evidence__{EXPIRY_EVIDENCE}")).values_list(
                "seq", "contact_id", "topic_id", "channel", "kind", "recorded_at", "expiry"))
        contacts = {row[2] for row in chunk} - enders.keys()
        if contacts:
            for contact_id in contacts:
                enders[contact_id] = []
            for contact_id, *ender in (ConsentEvent.objects.filter(contact_id__in=contacts)
                                       .filter(Q(kind__in=ENDING_KINDS) | Q(kind=EventKind.ERASED))
                                       .values_list("contact_id", "seq", "topic_id", "channel", "kind", "recorded_at")):
                enders[contact_id].append(ender)
        for row in chunk:
            problem = _problem(row, topics, events.get(row[3]), enders.get(row[2], ()))
            if problem is not None:
                return MessagesReport(ok=False, checked=checked, first_bad={
                    "delivery_id": row[0], "broadcast_id": row[1], "authorized_by": row[3],
                    "claimed_at": _instant(row[4]), "problem": problem})
            checked += 1
        if len(chunk) < chunk_size:
            break
    return MessagesReport(ok=True, checked=checked)


def broadcast_snapshot(broadcast: Broadcast) -> dict:
    """A broadcast as a staff action records it (its content, its schedule and its status)."""
    return {"name": broadcast.name, "topic": broadcast.topic.slug, "channel": broadcast.channel,
            "body": broadcast.body, "template": broadcast.template, "send_at": broadcast.send_at,
            "local_time": broadcast.local_time, "respect_quiet_hours": broadcast.respect_quiet_hours,
            "frequency_cap": broadcast.frequency_cap, "status": broadcast.status,
            "status_reason": broadcast.status_reason}


def broadcast_object(broadcast: Broadcast) -> dict:
    return {"object_type": "broadcast", "object_id": broadcast.pk, "object_repr": broadcast.name[:200]}
