"""Provider webhooks: Twilio inbound and status callbacks, WhatsApp Cloud verification and events.

No API token: each request is authenticated by its provider's signature (else 403). The
order is always: size cap (413), signature (403), parse (400), then the intake: an inbound
message is recorded once (consent/intake, rule 15) and answered 200; workers apply it after. A
redelivery records nothing twice. Status callbacks and WhatsApp preference updates are applied in
the request, as idempotent updates. When the database cannot be reached (or webhooks kept earlier
still wait), the verified webhook is kept in the inbound fallback in Redis and answered 200 all the
same (`accepted.webhook_accept`). Nothing a request carries can cause a 500: a failure while
recording, or a webhook that can be neither recorded nor kept, answers 503 with Retry-After.
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from consent import inbound
from consent.intake import records as intake_records
from consent.signatures import (
    TWILIO_SIGNATURE_HEADER,
    TWILIO_SIGNATURE_SETTINGS_HEADER,
    WHATSAPP_SIGNATURE_HEADER,
    twilio_algorithm,
    verify_twilio_signature,
    verify_whatsapp_signature,
)

from . import accepted, parsers
from .accepted import TWILIO, WHATSAPP_CLOUD

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def max_body_bytes() -> int:
    return int(getattr(settings, "WEBHOOK_MAX_BODY_BYTES", parsers.MAX_BODY_BYTES))


def _error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def _too_large(request: HttpRequest) -> bool:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return True
    return declared > max_body_bytes()


def _read_body(request: HttpRequest) -> bytes | None:
    """The raw body, or None when it is larger than the cap (whatever Content-Length said)."""
    if _too_large(request):
        return None
    try:
        body = request.body
    except RequestDataTooBig:
        return None
    return None if len(body) > max_body_bytes() else body


def _public_url(request: HttpRequest) -> str:
    """The URL the provider called, as configured at the provider: PUBLIC_BASE_URL + path + query."""
    return settings.PUBLIC_BASE_URL + request.get_full_path()


def _twilio_form(request: HttpRequest):
    """(form, error response): the verified form of a Twilio request."""
    if _read_body(request) is None:
        return None, _error(413, "Request body too large.")
    try:
        form = request.POST
    except (SuspiciousOperation, ValueError):  # too many fields, undecodable body
        return None, _error(400, "The body is not a form Twilio would send.")
    if not settings.TWILIO_AUTH_TOKEN:
        return None, _unverifiable("TWILIO_AUTH_TOKEN")
    valid = verify_twilio_signature(
        settings.TWILIO_AUTH_TOKEN,
        _public_url(request),
        form,
        request.headers.get(TWILIO_SIGNATURE_HEADER),
        algorithm=twilio_algorithm(request.headers.get(TWILIO_SIGNATURE_SETTINGS_HEADER)),
    )
    if not valid:
        return None, _error(403, "Invalid X-Twilio-Signature.")
    return form, None


def _unverifiable(setting: str) -> JsonResponse:
    """403 saying why: without the secret no signature can verify (the console provider's default)."""
    detail = (f"{setting} is not set: webhooks cannot be verified; "
              "use manage.py inbound to try the service as a customer.")
    logger.warning("webhook refused: %s", detail)
    return _error(403, detail)


def twilio_inbound_record(form, *, provider: str = TWILIO) -> intake_records.IntakeRecord:
    """A verified Twilio inbound form, parsed (PayloadError) into its intake record: the webhook's path
    after its signature check, also taken by `manage.py inbound` for a person typing on the console."""
    return _record(parsers.parse_twilio_inbound(form), provider)


def _record(message: parsers.InboundMessage, provider: str) -> intake_records.IntakeRecord:
    return intake_records.record_of(message, provider=provider, received_at=timezone.now(),
                                    default_region=settings.DEFAULT_PHONE_REGION)


def _callback_reference(request: HttpRequest) -> str:
    """The `ref` we put on the StatusCallback URL (signed with the rest of the URL), or "".

    Only a single value is taken; whether it names one of our records is the parser's business,
    and a `ref` that does not is ignored: the callback is applied as if it had none.
    """
    try:
        values = request.GET.getlist("ref")
    except SuspiciousOperation:  # too many query fields
        return ""
    return values[0] if len(values) == 1 else ""


def _retry_later(what: str) -> HttpResponse:
    logger.exception("webhook %s could not be applied; the provider will retry", what)
    return _unavailable()


def _unrecorded(what: str) -> HttpResponse:
    logger.error("webhook %s refused with 503: neither the database nor the inbound fallback can record it", what)
    return _unavailable()


def _unavailable() -> HttpResponse:
    response = _error(503, "Temporarily unable to process this webhook; retry later.")
    response["Retry-After"] = "30"
    return response


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    """POST /webhooks/twilio/inbound/: an SMS (or WhatsApp through Twilio) a person sent us."""
    form, error = _twilio_form(request)
    if error:
        return error
    try:
        record = twilio_inbound_record(form)
    except parsers.PayloadError as exc:
        return _error(400, f"Not a Twilio inbound message: {exc}.")
    what = f"twilio inbound {record.provider_message_id}"
    try:
        accepted_as = accepted.webhook_accept(records=[record])
    except Exception:
        return _retry_later(what)
    if accepted_as is None:
        return _unrecorded(what)
    return HttpResponse(EMPTY_TWIML, content_type="text/xml; charset=utf-8")


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    """POST /webhooks/twilio/status/: a status callback for a message we sent."""
    form, error = _twilio_form(request)
    if error:
        return error
    reference = _callback_reference(request)
    try:
        update = parsers.parse_twilio_status(form, reference=reference)
    except parsers.PayloadError as exc:
        return _error(400, f"Not a Twilio status callback: {exc}.")
    what = f"twilio status {update.provider_message_id}"
    try:
        accepted_as = accepted.webhook_accept(
            update=(accepted.TWILIO_STATUS, {"form": form.dict(), "reference": reference}),
            apply_updates=lambda: inbound.provider_status_apply(update=update, provider=TWILIO))
    except Exception:
        return _retry_later(what)
    if accepted_as is None:
        return _unrecorded(what)
    return HttpResponse(status=204)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp(request: HttpRequest) -> HttpResponse:
    """GET: Meta's subscription check. POST: a signed batch of messages, statuses and preferences."""
    if request.method == "GET":
        return _whatsapp_verify(request)
    body = _read_body(request)
    if body is None:
        return _error(413, "Request body too large.")
    if not settings.WHATSAPP_APP_SECRET:
        return _unverifiable("WHATSAPP_APP_SECRET")
    if not verify_whatsapp_signature(settings.WHATSAPP_APP_SECRET, body, request.headers.get(WHATSAPP_SIGNATURE_HEADER)):
        return _error(403, "Invalid X-Hub-Signature-256.")
    try:
        batch = parsers.parse_whatsapp_body(body)
    except parsers.PayloadError as exc:
        return _error(400, f"Not a WhatsApp Cloud webhook: {exc}.")
    if batch.ignored:
        logger.info("whatsapp webhook: ignored %s", ", ".join(batch.ignored[:20]))
    records = [_record(message, WHATSAPP_CLOUD) for message in batch.messages]
    updates = bool(batch.statuses or batch.preferences)
    try:
        # Kept whole if the database goes away half-way: the drain inserts a recorded message again as a
        # no-op and skips an applied update (forward-only statuses), as on Meta's redelivery.
        accepted_as = accepted.webhook_accept(
            records=records, update=(accepted.WHATSAPP_UPDATES, {"body": body.decode("utf-8")}) if updates else None,
            apply_updates=(lambda: accepted.whatsapp_updates_apply(batch)) if updates else None)
    except Exception:
        return _retry_later("whatsapp batch")
    if accepted_as is None:
        return _unrecorded("whatsapp batch")
    if accepted_as.kept:
        return JsonResponse({"ok": True, "kept": True})
    outcomes = {"messages": 0, "duplicates": 0, "statuses": len(batch.statuses), "preferences": len(batch.preferences),
                "ignored": len(batch.ignored)}
    for record, new in zip(records, accepted_as.new, strict=True):
        if not new:
            outcomes["duplicates"] += 1
        else:  # recorded either way; the applier ignores a sender that is no phone number
            outcomes["messages" if intake_records.is_number(record.sender) else "ignored"] += 1
    return JsonResponse({"ok": True, **outcomes})


def _whatsapp_verify(request: HttpRequest) -> HttpResponse:
    expected = settings.WHATSAPP_VERIFY_TOKEN
    given = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    if request.GET.get("hub.mode") != "subscribe" or not expected or not challenge:
        return _error(403, "Not a valid subscription request.")
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass")):
        return _error(403, "Wrong verify token.")
    if len(challenge) > 256:
        return _error(400, "hub.challenge is too long.")
    return HttpResponse(challenge, content_type="text/plain; charset=utf-8")
