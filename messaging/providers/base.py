"""The one small interface every messaging provider implements.

A provider turns an OutgoingMessage into a provider message id, or raises one of the
errors below. Transient errors may succeed if tried again later; permanent ones never will.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OutgoingMessage:
    """What to send. `body` for free text; `template` (name, language, components) for WhatsApp templates."""

    to: str  # E.164
    channel: str  # "sms" | "whatsapp"
    body: str = ""
    template: dict | None = None
    status_callback: str = ""  # absolute URL for delivery-status callbacks, where the provider takes one
    # Our own id for the message ("message-12", "delivery-34"): in logs, and given to a provider that
    # returns it in its status callbacks (WhatsApp Cloud's biz_opaque_callback_data).
    reference: str = ""


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    status: str = "sent"
    raw: dict = field(default_factory=dict)


class ProviderError(Exception):
    """A provider refused or failed to take a message.

    `outcome_unknown` is true when the request may have reached the provider and been
    accepted (a read timeout, a connection dropped after sending, a 2xx we could not read):
    a promotional message in that state is marked `unknown`, never sent again.
    """

    def __init__(self, message: str, *, code: str = "", http_status: int | None = None, outcome_unknown: bool = False):
        super().__init__(message)
        self.code = str(code or "")
        self.http_status = http_status
        self.outcome_unknown = outcome_unknown


class TransientProviderError(ProviderError):
    """Worth retrying later (429, 5xx, timeouts, connection errors).

    `rate_limited`: the provider asked us to slow down (HTTP 429, or a provider's own throttling
    code, which only its module knows); the sender then stops and comes back after `retry_after`.
    """

    def __init__(self, message: str, *, code: str = "", http_status: int | None = None, retry_after: float | None = None,
                 outcome_unknown: bool = False, rate_limited: bool = False):
        super().__init__(message, code=code, http_status=http_status, outcome_unknown=outcome_unknown)
        self.retry_after = retry_after
        self.rate_limited = rate_limited or http_status == 429


class HeldBackError(ProviderError):
    """The provider held this message back for now, for the person's sake (WhatsApp 131049): not a
    failure and nothing about consent; it may go later, after a growing wait, never at once."""


class PermanentProviderError(ProviderError):
    """Will fail again whatever we do (other 4xx)."""


class RecipientOptedOutError(PermanentProviderError):
    """The provider says this person opted out (Twilio 21610, WhatsApp 131050)."""


class InvalidRecipientError(PermanentProviderError):
    """The number cannot receive messages on this channel (the number is suppressed)."""


class Provider:
    """Base class: subclasses implement send()."""

    name = "base"

    def send(self, message: OutgoingMessage) -> SendResult:  # pragma: no cover - interface
        raise NotImplementedError
