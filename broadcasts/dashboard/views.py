"""The dashboard page (/workspace/, what the admin's "View site" opens), behind the admin's staff login."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe

from config.timezones import workspace_zone

from . import charts, selectors

DAYS = 30


def dashboard(request: HttpRequest) -> HttpResponse:
    zone = workspace_zone()
    axis, topics = selectors.topic_figures(days=DAYS, zone=zone)
    labels = [day.strftime("%d %b") for day in axis]
    panels = []
    for item in topics:
        panels.append({
            "topic": item.topic, "figures": item,
            "funnel_svg": mark_safe(charts.funnel(  # noqa: S308 - built by charts, every text escaped
                title=f"{item.topic.name}: consent funnel, last {DAYS} days",
                stages=list(item.funnel.items()), css_id=f"funnel-{item.topic.slug}")),
            "daily_svg": mark_safe(charts.line_chart(  # noqa: S308 - built by charts, every text escaped
                title=f"{item.topic.name}: opt-ins and opt-outs per day", labels=labels,
                series={"optins": item.optins, "optouts": item.optouts}, css_id=f"daily-{item.topic.slug}")),
            "optins_total": sum(item.optins), "optouts_total": sum(item.optouts),
        })
    broadcasts = []
    for row in selectors.broadcast_figures():
        order = ["delivered", "sent", "failed", "deferred", "queued", "skipped", "unknown", "cancelled"]
        broadcasts.append({
            "row": row,
            "bar": mark_safe(charts.stacked_bar(  # noqa: S308 - built by charts, every text escaped
                title=f"{row.broadcast.name}: deliveries by state",
                parts_=[(name, row.counts.get(name, 0)) for name in order])),
        })
    care_days = selectors.first_response_medians(days=DAYS, zone=zone)
    care = {
        "days": [{"day": item.day, "answered": item.answered, "median": charts.duration_label(item.median_seconds),
                  "median_seconds": item.median_seconds} for item in care_days if item.answered],
        "svg": mark_safe(charts.duration_bar_chart(  # noqa: S308 - built by charts, every text escaped
            title=f"Care: median first-response time per day, last {DAYS} days", labels=labels,
            values=[item.median_seconds for item in care_days], css_id="first-response")),
    }
    context = {
        **admin.site.each_context(request),
        "care": care,
        "title": "Dashboard",
        "days": DAYS,
        "panels": panels,
        "broadcasts": broadcasts,
        "reviews": selectors.revocation_reviews(),
    }
    return render(request, "broadcasts/dashboard.html", context)
