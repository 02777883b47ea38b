"""WhatsApp Business Cloud API client (Meta Graph API `/{phone-number-id}/messages`).

Error handling follows Meta's advice to branch on `error.code`, not on the HTTP status (most
Cloud API errors, rate limits included, come back as HTTP 400):

- 131050 "user stopped marketing messages": an opt-out (RecipientOptedOutError).
- 131026 "message undeliverable" (not a WhatsApp user, terms not accepted, or a client too
  old): the number cannot receive on this channel, so it is suppressed (InvalidRecipientError).
  131009 "parameter value is not valid" is *not* treated as an invalid number: it is raised for
  any bad parameter (template variables included), so it fails the delivery only.
- Rate limits, retried later: 4 (app call limit), 80007 (WABA limit), 130429 (throughput),
  131048 (spam rate limit), 131056 (business/user pair rate limit); and server-side hiccups
  2 (service temporarily unavailable), 131000 (something went wrong), 131016 (service
  unavailable); plus any HTTP 429 or 5xx.
- 131049 "Meta chose not to deliver" (the per-user marketing template limit, across businesses, "to
  maintain healthy ecosystem engagement"): held back, not a failure and not an opt-out; retried
  later with growing intervals, never at once (HeldBackError; rule 13 of docs/design.md). Meta's
  per-user limits: https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/marketing-templates/per-user-limits
- Everything else is permanent with the code from `error.code`.

Opt-outs and undeliverable numbers mostly arrive later on the status webhook; use
`error_for_code` there so both paths agree.
"""

from __future__ import annotations

import requests
from django.conf import settings

from .base import (
    HeldBackError,
    InvalidRecipientError,
    OutgoingMessage,
    PermanentProviderError,
    Provider,
    ProviderError,
    RecipientOptedOutError,
    SendResult,
    TransientProviderError,
)
from .http import HttpClient, json_object, parse_retry_after, per_process, shared_pool_size

DEFAULT_API_BASE = "https://graph.facebook.com/v23.0"
DEFAULT_TIMEOUT = (3.05, 10.0)

OPT_OUT_CODES = frozenset({"131050"})
INVALID_RECIPIENT_CODES = frozenset({"131026"})
HELD_BACK_CODES = frozenset({"131049"})
MAX_CALLBACK_DATA_CHARS = 512  # biz_opaque_callback_data
TRANSIENT_CODES = frozenset({"2", "4", "80007", "130429", "131000", "131016", "131048", "131056"})
# Throttling of the app (4), the business account (80007) or the phone number's throughput (130429):
# the sender slows down. Graph API error codes, https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
RATE_LIMIT_CODES = frozenset({"4", "80007", "130429"})


def error_for_code(code, message: str = "", *, http_status: int | None = None, retry_after: float | None = None) -> ProviderError:
    """The exception a Cloud API error code means (opt-out, invalid number, transient or other)."""
    code = str(code if code is not None else "")
    text = f"whatsapp {code or http_status}: {message}".strip()
    if code in OPT_OUT_CODES:
        return RecipientOptedOutError(text, code=code, http_status=http_status)
    if code in INVALID_RECIPIENT_CODES:
        return InvalidRecipientError(text, code=code, http_status=http_status)
    if code in HELD_BACK_CODES:
        return HeldBackError(text, code=code, http_status=http_status)
    if code in TRANSIENT_CODES or http_status == 429 or (http_status or 0) >= 500:
        return TransientProviderError(text, code=code or str(http_status or ""), http_status=http_status, retry_after=retry_after,
                                      rate_limited=code in RATE_LIMIT_CODES)
    return PermanentProviderError(text, code=code or str(http_status or ""), http_status=http_status)


def is_held_back_code(code) -> bool:
    """Whether a status webhook's error code means Meta held the message back (retry later, rule 13)."""
    return str(code or "") in HELD_BACK_CODES


def recipient_id(phone: str) -> str:
    """The Cloud API `to`: the E.164 number's digits, without `+` or separators."""
    return "".join(ch for ch in phone if ch.isdigit())


def template_payload(template: dict) -> dict:
    """A Cloud API `template` object from our {name, language, components} (language: code or dict)."""
    language = template.get("language") or "en_US"
    if isinstance(language, str):
        language = {"code": language}
    payload = {"name": template["name"], "language": language}
    if template.get("components"):
        payload["components"] = template["components"]
    return payload


class WhatsAppCloudProvider(Provider):
    """Sends WhatsApp messages through the Cloud API: templates for broadcasts, text for replies.

    One HttpClient (a keep-alive requests.Session) per instance; the same threading caveats as TwilioProvider
    (fine within one worker process, create it after fork).
    """

    name = "whatsapp_cloud"

    def __init__(
        self,
        access_token: str,
        phone_number_id: str,
        api_base: str = DEFAULT_API_BASE,
        timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
        pool_maxsize: int = 10,
    ):
        if not access_token or not phone_number_id:
            raise ValueError("WhatsAppCloudProvider needs WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID")
        self.phone_number_id = str(phone_number_id)
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.url = f"{self.api_base}/{self.phone_number_id}/messages"
        self.client = HttpClient(self.url, timeout=timeout, headers={"Authorization": f"Bearer {access_token}"},
                                 pool_maxsize=pool_maxsize)

    @classmethod
    def from_settings(cls, *, shared: bool = True, pool_maxsize: int = 10) -> WhatsAppCloudProvider:
        """A provider configured from settings WHATSAPP_* and PROVIDER_TIMEOUT (shared: see TwilioProvider)."""
        options = dict(
            access_token=settings.WHATSAPP_ACCESS_TOKEN,
            phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID,
            api_base=getattr(settings, "WHATSAPP_API_BASE", DEFAULT_API_BASE) or DEFAULT_API_BASE,
            timeout=tuple(getattr(settings, "PROVIDER_TIMEOUT", DEFAULT_TIMEOUT)),
        )
        if not shared:
            return cls(**options, pool_maxsize=pool_maxsize)
        # The shared instance may serve every thread of the process at once: keep as many
        # connections alive as the sender runs calls concurrently.
        pool_maxsize = max(pool_maxsize, shared_pool_size())
        return per_process((cls, *sorted(options.items())), lambda: cls(**options, pool_maxsize=pool_maxsize))

    def payload_for(self, message: OutgoingMessage) -> dict:
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": recipient_id(message.to)}
        if message.template:
            payload["type"] = "template"
            payload["template"] = template_payload(message.template)
        else:
            payload["type"] = "text"
            payload["text"] = {"body": message.body, "preview_url": False}
        if message.reference:
            # Meta returns it in the message's status webhooks, which may come before this call's
            # answer (and so the message id) is recorded: it finds the message meanwhile.
            payload["biz_opaque_callback_data"] = message.reference[:MAX_CALLBACK_DATA_CHARS]
        return payload

    def send(self, message: OutgoingMessage) -> SendResult:
        return self.result_from_response(self.client.post_json(self.payload_for(message), provider="whatsapp"))

    def result_from_response(self, response: requests.Response) -> SendResult:
        """A SendResult for a reply carrying a message id; otherwise raise the ProviderError it means."""
        status = response.status_code
        payload = json_object(response)

        if 200 <= status < 300:
            messages = payload.get("messages")
            first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], dict) else {}
            message_id = first.get("id")
            if not isinstance(message_id, str) or not message_id:
                error = PermanentProviderError(
                    f"whatsapp: {status} reply without a message id", code="malformed_response", http_status=status
                )
                error.outcome_unknown = True  # accepted but unidentifiable: resending could send twice
                raise error
            return SendResult(provider_message_id=message_id, status=str(first.get("message_status") or "accepted"), raw=payload)

        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        details = error.get("error_data", {}).get("details") if isinstance(error.get("error_data"), dict) else None
        text = str(details or error.get("message") or response.reason or "")
        raise error_for_code(
            error.get("code"),
            text,
            http_status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
