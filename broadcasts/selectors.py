"""Reads for broadcasts: audience (through the consent selector), stats, due broadcasts."""

from datetime import datetime, timedelta

from django.db.models import Count, Min, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Substr
from django.utils import timezone

from consent.models import Consent, ConsentStatus, Contact
from consent.selectors import audience_consents

from . import policies, quiet_hours
from .conf import setting
from .models import HANDED_OVER_STATUSES, Broadcast, BroadcastStatus, Delivery, DeliveryStatus

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


# --- dry run: who would get it now, and why the others would not ---------------------------

# Reasons a consent of the topic and channel is left out, in the order the dry run shows them.
EXCLUSION_REASONS = ("pending", "revoked", "expired", "suppressed", "no_ledger_event", "frequency_cap",
                     "missing_attribute")


def _quiet_hours_now(*, broadcast: Broadcast, audience: QuerySet, now: datetime) -> int:
    """How many of the audience are outside their jurisdiction's window now (their delivery would wait,
    not be dropped): the policy the claim applies (broadcasts/policies.py), grouped by country and the
    number's first digits (a +1 number's area code places it)."""
    if not broadcast.respect_quiet_hours:
        return 0
    book = policies.book(setting("BROADCAST_QUIET_HOURS"), setting("BROADCAST_CAPS"))
    groups = (Contact.objects.filter(pk__in=audience).order_by()
              .annotate(prefix=Substr("phone", 1, 5))
              .values_list("country", "prefix", "timezone", "timezones").annotate(n=Count("id")))
    waiting = 0
    for country, prefix, zone, zones, n in groups:
        policy = book.for_number(prefix, country)
        names = policies.zones_for(policy, tuple(z for z in (zones or []) if isinstance(z, str) and z) or (zone or "UTC",))
        try:
            allowed = quiet_hours.is_allowed(now, names, policy.window)
        except (ValueError, KeyError):
            allowed = quiet_hours.is_allowed(now, ("UTC",), policy.window)
        if not allowed:
            waiting += n
    return waiting


def _capped(*, broadcast: Broadcast, audience: QuerySet, now: datetime) -> int:
    """How many of the audience already had the broadcast's frequency cap of this topic's messages."""
    if not broadcast.frequency_cap:
        return 0
    since = now - timedelta(days=int(setting("BROADCAST_FREQUENCY_WINDOW_DAYS")))
    recent = (Delivery.objects.filter(contact_id__in=audience, broadcast__topic_id=broadcast.topic_id,
                                      claimed_at__gte=since, status__in=HANDED_OVER_STATUSES)
              .exclude(broadcast_id=broadcast.pk).order_by().values("contact_id").annotate(n=Count("id"))
              .filter(n__gte=broadcast.frequency_cap))
    return recent.count()


def broadcast_dry_run(*, broadcast: Broadcast, now: datetime | None = None) -> dict:
    """Before scheduling: who would get the broadcast if it started now, and why the others would not.

    `excluded` counts the topic's consents on the channel that are not in the audience by their state
    (pending, revoked, expired), numbers that may not be messaged (erased or suppressed), consents with no
    ledger event behind them; and, of the audience, the contacts over the frequency cap or lacking a
    placeholder without fallback. `deferred.quiet_hours` are in the audience but inside quiet hours now:
    they get it when their window opens. A contact left out for two reasons counts under each.
    """
    now = now or timezone.now()
    consents = Consent.objects.filter(topic_id=broadcast.topic_id, channel=broadcast.channel)
    current = consents.current(now)
    audience_ids = audience_consents(topic=broadcast.topic, channel=broadcast.channel, now=now).values("contact_id")
    audience = audience_ids.count()
    current_total = current.count()
    messageable = current.messageable().count()
    compiled = broadcast.compiled_content
    missing = broadcast_missing_placeholders(broadcast=broadcast, required=compiled.required_names(),
                                             fallbacks=compiled.fallback_names(), now=now)
    excluded = {
        "pending": consents.with_status(ConsentStatus.PENDING, now).count(),
        "revoked": consents.filter(status=ConsentStatus.REVOKED).count(),
        "expired": consents.with_status(ConsentStatus.EXPIRED, now).count(),
        "suppressed": current_total - messageable,
        "no_ledger_event": messageable - audience,
        "frequency_cap": _capped(broadcast=broadcast, audience=audience_ids, now=now),
        "missing_attribute": missing["missing_attribute"],
    }
    eligible = max(audience - excluded["frequency_cap"] - excluded["missing_attribute"], 0)
    quiet = _quiet_hours_now(broadcast=broadcast, audience=audience_ids, now=now) if eligible else 0
    return {"audience": audience, "eligible": eligible, "eligible_now": max(eligible - quiet, 0),
            "excluded": excluded, "deferred": {"quiet_hours": quiet},
            "missing_placeholders": missing["missing_placeholders"], "fallbacks_used": missing["fallbacks_used"],
            "at": now}
