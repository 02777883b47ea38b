"""Twilio Programmable Messaging client (SMS) over the 2010-04-01 REST API.

Error codes that change what we do about a number (see https://www.twilio.com/docs/api/errors):

- 21610 "Attempt to send to unsubscribed recipient": the person texted STOP to our sender,
  so it is an opt-out (RecipientOptedOutError; rule 10 of docs/design.md).
- Codes that describe the *number itself* and suppress it (InvalidRecipientError):
  21211 invalid 'To' number, 21614 'To' is not a mobile number (landline or invalid),
  21635 'To' is a landline; and, on status callbacks only, 30005 unknown destination handset
  and 30006 landline or unreachable carrier.
- Deliberately *not* suppressing: 21612 (the To/From combination cannot be routed: a sender
  configuration problem), 21408 (the account has no permission for that region), 21608
  (trial account, unverified number), 30003 (handset unreachable, often temporary). These fail
  the delivery with their code (PermanentProviderError) but leave the number usable.

The helpers `error_for_code` / `is_opt_out_code` / `is_invalid_recipient_code` are public so
that the delivery-status webhook can classify `ErrorCode` the same way as a synchronous reply.
"""

from __future__ import annotations

import requests
from django.conf import settings

from .base import (
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

DEFAULT_API_BASE = "https://api.twilio.com"
DEFAULT_TIMEOUT = (3.05, 10.0)

OPT_OUT_CODES = frozenset({"21610"})
INVALID_RECIPIENT_CODES = frozenset({"21211", "21614", "21635", "30005", "30006"})
# Twilio's own "too many requests" code; it comes with HTTP 429 but we trust the code too.
RATE_LIMIT_CODES = frozenset({"20429"})


def error_for_code(code, message: str = "", *, http_status: int | None = None) -> ProviderError:
    """The exception a Twilio error code means (opt-out, invalid number, rate limit or other)."""
    code = str(code or "")
    text = f"twilio {code or http_status}: {message}".strip()
    if code in OPT_OUT_CODES:
        return RecipientOptedOutError(text, code=code, http_status=http_status)
    if code in INVALID_RECIPIENT_CODES:
        return InvalidRecipientError(text, code=code, http_status=http_status)
    if code in RATE_LIMIT_CODES:
        return TransientProviderError(text, code=code, http_status=http_status, rate_limited=True)
    return PermanentProviderError(text, code=code or str(http_status or ""), http_status=http_status)


def is_opt_out_code(code) -> bool:
    return str(code or "") in OPT_OUT_CODES


def is_invalid_recipient_code(code) -> bool:
    return str(code or "") in INVALID_RECIPIENT_CODES


class TwilioProvider(Provider):
    """Sends SMS through Twilio's Messages.json endpoint.

    One HttpClient (a keep-alive requests.Session keeping up to `pool_maxsize` connections) per
    instance. It may be shared between the threads of one worker process (see HttpClient), but not
    across a fork: create the provider after the worker process starts (get_provider() does), not
    at import.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str = "",
        messaging_service_sid: str = "",
        api_base: str = DEFAULT_API_BASE,
        timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
        pool_maxsize: int = 10,
    ):
        if not account_sid or not auth_token:
            raise ValueError("TwilioProvider needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        if not from_number and not messaging_service_sid:
            raise ValueError("TwilioProvider needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.url = f"{self.api_base}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.client = HttpClient(self.url, timeout=timeout, auth=(account_sid, auth_token), pool_maxsize=pool_maxsize)

    @classmethod
    def from_settings(cls, *, shared: bool = True, pool_maxsize: int = 10) -> TwilioProvider:
        """A provider configured from settings TWILIO_* and PROVIDER_TIMEOUT.

        `shared=True` returns this process's instance for the current settings, so successive
        sends reuse its keep-alive connections.
        """
        options = dict(
            account_sid=settings.TWILIO_ACCOUNT_SID,
            auth_token=settings.TWILIO_AUTH_TOKEN,
            from_number=getattr(settings, "TWILIO_FROM_NUMBER", ""),
            messaging_service_sid=getattr(settings, "TWILIO_MESSAGING_SERVICE_SID", ""),
            api_base=getattr(settings, "TWILIO_API_BASE", DEFAULT_API_BASE) or DEFAULT_API_BASE,
            timeout=tuple(getattr(settings, "PROVIDER_TIMEOUT", DEFAULT_TIMEOUT)),
        )
        if not shared:
            return cls(**options, pool_maxsize=pool_maxsize)
        # The shared instance may serve every thread of the process at once: keep as many
        # connections alive as the sender runs calls concurrently.
        pool_maxsize = max(pool_maxsize, shared_pool_size())
        return per_process((cls, *sorted(options.items())), lambda: cls(**options, pool_maxsize=pool_maxsize))

    def form_for(self, message: OutgoingMessage) -> dict[str, str]:
        form = {"To": message.to, "Body": message.body}
        # A Messaging Service picks the sender and applies its own opt-out handling; prefer it.
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            form["From"] = self.from_number
        if message.status_callback:
            form["StatusCallback"] = message.status_callback
        return form

    def send(self, message: OutgoingMessage) -> SendResult:
        return self.result_from_response(self.client.post_form(self.form_for(message), provider="twilio"))

    def result_from_response(self, response: requests.Response) -> SendResult:
        """A SendResult for a 2xx reply; otherwise raise the ProviderError the reply means."""
        status = response.status_code
        payload = json_object(response)

        if 200 <= status < 300:
            sid = payload.get("sid")
            if not isinstance(sid, str) or not sid:
                # Twilio took the request but we cannot tell which message it made: resending could
                # send twice, so this is permanent, and flagged as an unknown outcome.
                error = PermanentProviderError(
                    f"twilio: {status} reply without a message sid", code="malformed_response", http_status=status
                )
                error.outcome_unknown = True
                raise error
            return SendResult(provider_message_id=sid, status=str(payload.get("status") or "queued"), raw=payload)

        code = payload.get("code")
        text = str(payload.get("message") or response.reason or "")
        if status == 429 or status >= 500:
            raise TransientProviderError(
                f"twilio {status}: {text}",
                code=str(code or status),
                http_status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                rate_limited=str(code or "") in RATE_LIMIT_CODES,
            )
        error = error_for_code(code, text, http_status=status)
        if isinstance(error, TransientProviderError):
            error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise error
