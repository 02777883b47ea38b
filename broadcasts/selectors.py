"""Reads for broadcasts: audience (through the consent selector), stats, due broadcasts."""

from datetime import datetime

from django.db.models import Count, Min, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.utils import timezone

from consent.models import Contact
from consent.selectors import audience_consents

from .models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus

STAT_KEYS = ("audience", "queued", "sent", "delivered", "failed", "skipped", "deferred", "unknown", "cancelled")
# Before its launch a broadcast has no delivery rows: its audience is the one it would have now.
NOT_LAUNCHED = (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED)
# Delivery status → the stat it counts in (queued includes rows in flight; delivered includes read).
STAT_OF_STATUS = {
    DeliveryStatus.QUEUED: "queued",
    DeliveryStatus.SENDING: "queued",
    DeliveryStatus.DEFERRED: "deferred",
    DeliveryStatus.SENT: "sent",
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.READ: "delivered",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.SKIPPED: "skipped",
    DeliveryStatus.UNKNOWN: "unknown",
    DeliveryStatus.CANCELLED: "cancelled",
}


def broadcast_audience(*, broadcast: Broadcast, now: datetime | None = None) -> QuerySet:
    """Contact ids whose consent for the broadcast's topic and channel is current at `now`."""
    return audience_consents(topic=broadcast.topic, channel=broadcast.channel, now=now or timezone.now()).values("contact_id")


def broadcast_audience_count(*, broadcast: Broadcast, now: datetime | None = None) -> int:
    """The audience preview: how many contacts would get the broadcast if it started now."""
    return audience_consents(topic=broadcast.topic, channel=broadcast.channel, now=now or timezone.now()).count()


def broadcast_audience_sample(*, broadcast: Broadcast, limit: int = 5, now: datetime | None = None) -> list[Contact]:
    ids = broadcast_audience(broadcast=broadcast, now=now).order_by("contact_id")[:limit]
    return list(Contact.objects.filter(pk__in=ids).order_by("id"))


def broadcast_stats(*, broadcast: Broadcast, now: datetime | None = None) -> dict:
    """Counts of deliveries per stat, and `next_due_at`: when the first deferred delivery is due.

    `audience` is every delivery row (the audience at launch); before the launch, the audience
    the broadcast would have now.
    """
    stats: dict = dict.fromkeys(STAT_KEYS, 0)
    rows = Delivery.objects.filter(broadcast=broadcast).order_by().values_list("status").annotate(n=Count("id"))
    for status, n in rows:
        stats[STAT_OF_STATUS.get(status, "queued")] += n
        stats["audience"] += n
    if broadcast.status in NOT_LAUNCHED or (broadcast.status == BroadcastStatus.PAUSED and broadcast.launched_at is None):
        stats["audience"] = broadcast_audience_count(broadcast=broadcast, now=now)
    stats["next_due_at"] = None
    if stats["deferred"]:
        stats["next_due_at"] = Delivery.objects.filter(
            broadcast=broadcast, status=DeliveryStatus.DEFERRED, not_before__isnull=False,
        ).aggregate(at=Min("not_before"))["at"]
    return stats


def broadcasts_due(*, now: datetime) -> QuerySet[Broadcast]:
    """Scheduled broadcasts whose start time has come."""
    return Broadcast.objects.filter(status=BroadcastStatus.SCHEDULED, send_at__lte=now).order_by("send_at", "id")


def attribute_names_seen(*, topic, channel: str, sample: int = 1000) -> set[str]:
    """Attribute keys present on a sample of the topic's current audience (for placeholder checks)."""
    ids = audience_consents(topic=topic, channel=channel).order_by("contact_id").values("contact_id")[:sample]
    names = set()
    for attributes in Contact.objects.filter(pk__in=ids).values_list("attributes", flat=True):
        if isinstance(attributes, dict):
            names.update(attributes)
    return names


def attribute_names_present(*, names: list[str]) -> set[str]:
    """Those of `names` that at least one contact has as an attribute (one EXISTS query each)."""
    return {name for name in names if Contact.objects.filter(attributes__has_key=name).exists()}


def _lacks(name: str, alias: str) -> Q:
    """Contacts with no usable value for placeholder `name` (absent, null or empty)."""
    if name in ("phone", "country"):
        return Q(**{f"{name}__isnull": True}) | Q(**{name: ""})
    # Key absent, JSON null (`exact=None` means JSON null for a key), or the empty string.
    return Q(**{f"{alias}__isnull": True}) | Q(**{alias: None}) | Q(**{f"{alias}_text": ""})


def broadcast_missing_placeholders(*, broadcast: Broadcast, required: list[str], fallbacks: list[str],
                                   now: datetime | None = None) -> dict:
    """How many of the current audience lack each placeholder: skipped (`required`, no fallback)
    or given the fallback; and how many would be skipped for lacking at least one."""
    names = [*required, *fallbacks]
    if not names:
        return {"missing_placeholders": {}, "fallbacks_used": {}, "missing_attribute": 0}
    attributes = [(i, name) for i, name in enumerate(names) if name not in ("phone", "country")]
    contacts = Contact.objects.filter(pk__in=broadcast_audience(broadcast=broadcast, now=now)).annotate(
        **{f"attr_{i}": KeyTransform(name, "attributes") for i, name in attributes},
        **{f"attr_{i}_text": KeyTextTransform(name, "attributes") for i, name in attributes},
    )
    counts = {f"n{i}": Count("pk", filter=_lacks(name, f"attr_{i}")) for i, name in enumerate(names)}
    if required:
        any_required = Q()
        for i, name in enumerate(required):
            any_required |= _lacks(name, f"attr_{i}")
        counts["skipped"] = Count("pk", filter=any_required)
    totals = contacts.aggregate(**counts)
    return {
        "missing_placeholders": {name: totals[f"n{i}"] for i, name in enumerate(required)},
        "fallbacks_used": {name: totals[f"n{len(required) + i}"] for i, name in enumerate(fallbacks)},
        "missing_attribute": totals.get("skipped", 0),
    }
