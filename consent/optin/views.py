"""The hosted opt-in page (GET shows it, POST requests the double opt-in) and the confirmation
link page (GET shows a button, only the POST of that button confirms: link scanners prefetch)."""

from __future__ import annotations

import hashlib
import logging

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from consent import limits, selectors, services
from consent.models import ConfirmationToken, Source, Topic
from consent.outbox import confirmation_link

from .client_ip import client_ip
from .forms import OptinForm

logger = logging.getLogger(__name__)


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    # The confirmation token must not leak to other sites; "no-referrer" would also make browsers
    # send "Origin: null" on our own form posts, which CSRF protection rightly refuses.
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex"
    return response


def mask(e164: str) -> str:
    """+14155550123 -> +1 ••• 0123: enough for a person to recognise their number, no more."""
    try:
        country_code = phonenumbers.parse(e164).country_code
    except phonenumbers.NumberParseException:
        return "your number"
    return f"+{country_code} ••• {e164[-4:]}"


def _evidence(request: HttpRequest, topic: Topic) -> dict:
    return {
        "ip": client_ip(request),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:512],
        "page_url": settings.PUBLIC_BASE_URL + request.get_full_path(),
        "text_version": topic.current_text.version,
        "text_sha256": topic.current_text.sha256,
        "form": "hosted_optin_page",
    }


def _topic_or_404(slug: str) -> Topic:
    topic = selectors.topic_get(slug)
    if topic is None or topic.current_text_id is None:
        raise Http404("No such topic.")
    return topic


@csrf_protect
@require_http_methods(["GET", "POST"])
def optin_page(request: HttpRequest, topic: str) -> HttpResponse:
    """GET /optin/<topic>/ shows the consent text and form; POST makes the consent pending and sends the prompt."""
    topic_obj = _topic_or_404(topic)
    text = topic_obj.current_text
    if request.method == "GET":
        form = OptinForm(initial={"text_version": text.version})
        return _no_store(render(request, "consent/optin_form.html", {"topic": topic_obj, "text": text, "form": form}))

    form = OptinForm(request.POST)
    context = {"topic": topic_obj, "text": text, "form": form}
    if not form.is_valid():
        return _no_store(render(request, "consent/optin_form.html", context, status=400))
    if form.cleaned_data["text_version"] != text.version:
        # The person agreed to a text that has since changed: show the new one and ask again.
        form = OptinForm(initial={"text_version": text.version, "phone": request.POST.get("phone", "")[:32]})
        context.update(form=form, error="The consent text has changed since you opened this page. Please read it again.")
        return _no_store(render(request, "consent/optin_form.html", context, status=409))
    phone = form.cleaned_data["phone"]
    # One answer whatever the number's state (new, pending, subscribed, suppressed, erased): the
    # page must not tell a visitor anything about someone else's number.
    neutral = {"topic": topic_obj, "masked": mask(phone.e164), "channel": form.cleaned_data["channel"]}
    if form.cleaned_data["website"]:
        logger.info("opt-in page: honeypot filled for topic %s, nothing sent", topic_obj.slug)
        return _no_store(render(request, "consent/optin_requested.html", neutral))
    if not limits.country_allowed(phone.country):
        context["error"] = "We do not send messages to numbers in this country."
        return _no_store(render(request, "consent/optin_form.html", context, status=400))
    try:
        limits.page_request_allowed(ip=client_ip(request))
        services.optin_request(phone=phone.e164, topic=topic_obj, channel=form.cleaned_data["channel"],
                               source=Source.WEB_FORM, evidence=_evidence(request, topic_obj))
    except (limits.LimitExceeded, services.OptinLimited) as exc:
        context["error"] = str(exc)
        return _no_store(render(request, "consent/optin_form.html", context, status=429))
    except ValidationError as exc:
        logger.info("opt-in page: no prompt for topic %s: %s", topic_obj.slug, exc)
    return _no_store(render(request, "consent/optin_requested.html", neutral))


def _token_consent(token: str):
    if not isinstance(token, str) or len(token) > 200:
        return None
    record = (
        ConfirmationToken.objects.select_related("consent__topic", "consent__contact")
        .filter(token_sha256=hashlib.sha256(token.encode()).hexdigest())
        .first()
    )
    return record.consent if record else None


@csrf_protect
@require_http_methods(["GET", "POST"])
def confirm_page(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirm button (and changes nothing); POST of that button confirms."""
    consent = _token_consent(token)
    context = {"consent": consent, "topic": consent.topic if consent else None,
               "masked": mask(consent.contact.phone or "") if consent else ""}
    if request.method == "GET":
        return _no_store(render(request, "consent/optin_confirm.html", context))
    evidence = {"ip": client_ip(request), "user_agent": request.META.get("HTTP_USER_AGENT", "")[:512],
                "page_url": confirmation_link()}  # the ledger is read by staff: never the token
    try:
        confirmed = services.optin_confirm_by_token(token=token, source=Source.WEB_FORM, evidence=evidence)
    except ValidationError as exc:
        messages = exc.message_dict.get("token") if hasattr(exc, "error_dict") else exc.messages
        context["error"] = " ".join(messages or ["This confirmation link is not valid."])
        return _no_store(render(request, "consent/optin_confirm.html", context, status=400))
    context.update(consent=confirmed, topic=confirmed.topic)
    return _no_store(render(request, "consent/optin_confirmed.html", context))
