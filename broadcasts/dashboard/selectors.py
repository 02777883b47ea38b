"""Reads for the dashboard: the consent funnel and daily opt-ins/opt-outs from the ledger, the current
audience per channel, per-broadcast outcomes with the opt-out rate after each, revocation reviews and
the care inbox's median first-response time per day.

Days are the marketer's days (settings.WORKSPACE_TIME_ZONE). Every figure is one grouped query (the
medians: one query over the window, grouped in Python).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from consent.models import Consent, ConsentEvent, ConversationReply, EventKind, RevocationReview, Topic

from ..models import HANDED_OVER_STATUSES, Broadcast, Delivery
from ..selectors import STAT_OF_STATUS

FUNNEL_KINDS = (EventKind.REQUESTED, EventKind.CONFIRMED, EventKind.IMPORTED, EventKind.REVOKED, EventKind.EXPIRED)
OPT_OUT_WINDOW = timedelta(hours=24)


@dataclass
class TopicFigures:
    topic: Topic
    funnel: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("requested", "confirmed", "revoked", "expired"), 0))
    optins: list[int] = field(default_factory=list)
    optouts: list[int] = field(default_factory=list)
    audience: dict[str, int] = field(default_factory=dict)


def days_ending(today: date, days: int) -> list[date]:
    return [today - timedelta(days=days - 1 - i) for i in range(days)]


def topic_figures(*, days: int, zone: tzinfo, now: datetime | None = None) -> tuple[list[date], list[TopicFigures]]:
    """Per topic, over the last `days` days: the funnel (requested → confirmed → revoked / expired; an
    imported proof counts as confirmed), opt-ins (confirmed, imported) and opt-outs (revoked) per day,
    and the audience now per channel (consents that may receive a promotion)."""
    now = now or timezone.now()
    axis = days_ending(now.astimezone(zone).date(), days)
    since = datetime.combine(axis[0], datetime.min.time(), tzinfo=zone)
    figures = {t.pk: TopicFigures(t, optins=[0] * days, optouts=[0] * days) for t in Topic.objects.order_by("name")}
    index = {day: i for i, day in enumerate(axis)}
    rows = (ConsentEvent.objects.filter(occurred_at__gte=since, kind__in=FUNNEL_KINDS, topic__isnull=False)
            .annotate(day=TruncDate("occurred_at", tzinfo=zone)).order_by()
            .values_list("topic_id", "day", "kind").annotate(n=Count("id")))
    for topic_id, day, kind, n in rows:
        item = figures.get(topic_id)
        if item is None:
            continue
        stage = "confirmed" if kind == EventKind.IMPORTED else kind
        item.funnel[stage] += n
        i = index.get(day)
        if i is None:
            continue
        if kind in (EventKind.CONFIRMED, EventKind.IMPORTED):
            item.optins[i] += n
        elif kind == EventKind.REVOKED:
            item.optouts[i] += n
    audience = (Consent.objects.may_receive_promotion(now).order_by().values_list("topic_id", "channel")
                .annotate(n=Count("id")))
    for topic_id, channel, n in audience:
        if topic_id in figures:
            figures[topic_id].audience[channel] = n
    return axis, list(figures.values())


@dataclass
class BroadcastFigures:
    broadcast: Broadcast
    counts: dict[str, int]
    handed_over: int
    optouts: int

    @property
    def optout_rate(self) -> float | None:
        return self.optouts / self.handed_over if self.handed_over else None


def broadcast_figures(*, limit: int = 10) -> list[BroadcastFigures]:
    """The latest launched broadcasts: deliveries per state, and the opt-out rate in the 24 hours after
    the launch (recipients it was handed to who revoked a consent on its channel in that window)."""
    broadcasts = list(Broadcast.objects.filter(launched_at__isnull=False).select_related("topic").order_by("-launched_at")[:limit])
    counts: dict[int, dict[str, int]] = {b.pk: {} for b in broadcasts}
    handed: dict[int, int] = dict.fromkeys(counts, 0)
    rows = (Delivery.objects.filter(broadcast_id__in=counts).order_by().values_list("broadcast_id", "status")
            .annotate(n=Count("id")))
    for broadcast_id, status, n in rows:
        stat = STAT_OF_STATUS.get(status, "queued")
        counts[broadcast_id][stat] = counts[broadcast_id].get(stat, 0) + n
        if status in HANDED_OVER_STATUSES:
            handed[broadcast_id] += n
    result = []
    for broadcast in broadcasts:
        recipients = Delivery.objects.filter(broadcast=broadcast, status__in=HANDED_OVER_STATUSES).values("contact_id")
        optouts = (ConsentEvent.objects.filter(kind=EventKind.REVOKED, channel=broadcast.channel, contact_id__in=recipients,
                                               occurred_at__gte=broadcast.launched_at,
                                               occurred_at__lt=broadcast.launched_at + OPT_OUT_WINDOW)
                   .values("contact_id").distinct().count()) if handed[broadcast.pk] else 0
        result.append(BroadcastFigures(broadcast, counts[broadcast.pk], handed[broadcast.pk], optouts))
    return result


def revocation_reviews(*, now: datetime | None = None) -> dict:
    """Unresolved revocation reviews: open, standing out (two US business days or less to their
    deadline) and past their deadline (the beat applies those as revocations)."""
    now = now or timezone.now()
    unresolved = RevocationReview.objects.filter(resolved_at__isnull=True)
    return {"open": unresolved.count(), "overdue": unresolved.filter(deadline__lt=now).count(),
            "due_soon": unresolved.filter(due_soon_at__lte=now, deadline__gte=now).count()}

@dataclass
class FirstResponseDay:
    day: date
    answered: int  # conversations (openings) whose first reply was queued that day
    median_seconds: float | None  # None: none answered that day


def first_response_medians(*, days: int, zone: tzinfo, now: datetime | None = None) -> list[FirstResponseDay]:
    """Per day over the last `days` days, the median first-response time of the care conversations whose
    first reply (since they opened or reopened) was queued that day (docs/care.md defines the wait).

    One query over the window's first replies (the partial index on them); the median per day in Python,
    as SQLite and PostgreSQL share no median aggregate.
    """
    now = now or timezone.now()
    axis = days_ending(now.astimezone(zone).date(), days)
    since = datetime.combine(axis[0], datetime.min.time(), tzinfo=zone)
    waits: dict[date, list[int]] = defaultdict(list)
    rows = (ConversationReply.objects.filter(first_response_seconds__isnull=False, created_at__gte=since,
                                             created_at__lte=now)
            .annotate(day=TruncDate("created_at", tzinfo=zone)).order_by().values_list("day", "first_response_seconds"))
    for day, seconds in rows:
        waits[day].append(seconds)
    return [FirstResponseDay(day, len(waits[day]), statistics.median(waits[day]) if waits[day] else None)
            for day in axis]
