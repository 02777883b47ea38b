"""The preference centre page, /preferences/<token>/ (rule 17): GET lists the person's topics on the
link's channel with their state; a POST of one of its buttons withdraws a topic, withdraws them all, or
asks again for a topic (a new double opt-in). Linked from every HELP reply."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from consent import preferences, selectors, services
from consent.models import Channel

from .client_ip import client_ip
from .views import _no_store, mask

logger = logging.getLogger(__name__)

REDACTED_PAGE_URL = "/preferences/[redacted]/"  # the ledger is read by staff: never the link's token


def _evidence(request: HttpRequest) -> dict:
    return {"ip": client_ip(request), "user_agent": request.META.get("HTTP_USER_AGENT", "")[:512],
            "page_url": settings.PUBLIC_BASE_URL + REDACTED_PAGE_URL, "form": "preference_centre"}


def _page(request, subject, *, status=200, notice="", error=""):
    context = {"masked": mask(subject.contact.phone or ""), "channel": Channel(subject.channel).label,
               "items": preferences.preferences_list(subject=subject), "notice": notice, "error": error}
    return _no_store(render(request, "consent/preferences.html", context, status=status))


@csrf_protect
@require_http_methods(["GET", "POST"])
def preferences_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subject = preferences.preference_subject(token)
    except preferences.PreferenceLinkError as exc:
        return _no_store(render(request, "consent/preferences.html", {"link_error": str(exc)}, status=404))
    if request.method == "GET":
        return _page(request, subject)
    action = request.POST.get("action", "")
    slug = request.POST.get("topic", "")[:64]
    topic = selectors.topic_get(slug) if slug else None
    if action in ("withdraw", "subscribe") and (topic is None or topic.current_text_id is None):
        return _page(request, subject, status=400, error="Choose one of the topics listed.")
    if action == "withdraw_all":
        revoked = preferences.preferences_withdraw(subject=subject, evidence=_evidence(request))
        notice = "You are unsubscribed from every topic on this number." if revoked else "You had no subscription to withdraw."
        return _page(request, subject, notice=notice)
    if action == "withdraw":
        revoked = preferences.preferences_withdraw(subject=subject, topic=topic, evidence=_evidence(request))
        notice = f"You are unsubscribed from {topic.name}." if revoked else f"You were not subscribed to {topic.name}."
        return _page(request, subject, notice=notice)
    if action == "subscribe":
        try:
            result = preferences.preferences_subscribe(subject=subject, topic=topic, evidence=_evidence(request))
        except services.OptinLimited as exc:
            return _page(request, subject, status=429, error=str(exc))
        except ValidationError as exc:
            logger.info("preference centre: no opt-in for %s: %s", topic.slug, exc)
            return _page(request, subject, status=400, error="We cannot send messages to this number.")
        if result.consent.status == "active":
            return _page(request, subject, notice=f"You are already subscribed to {topic.name}.")
        return _page(request, subject, notice=f"We have sent you a message: reply YES to confirm {topic.name}.")
    return _page(request, subject, status=400, error="Choose one of the buttons.")
