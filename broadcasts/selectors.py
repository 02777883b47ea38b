"""Reads for broadcasts: audience (through the consent selector), stats, due broadcasts."""

from datetime import datetime

from django.db.models import Count, QuerySet
from django.utils import timezone

from consent.models import Contact
from consent.selectors import audience_consents

from .models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus

STAT_KEYS = ("audience", "queued", "sent", "delivered", "failed", "skipped", "deferred", "unknown", "cancelled")
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


def broadcast_stats(*, broadcast: Broadcast) -> dict[str, int]:
    """Counts of deliveries per stat; `audience` is every delivery row (the audience at launch)."""
    stats = dict.fromkeys(STAT_KEYS, 0)
    rows = Delivery.objects.filter(broadcast=broadcast).order_by().values_list("status").annotate(n=Count("id"))
    for status, n in rows:
        stats[STAT_OF_STATUS.get(status, "queued")] += n
        stats["audience"] += n
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
