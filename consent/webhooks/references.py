"""Our own reference for a message we send, brought back to us by the provider's status callbacks.

A status callback names the message by the provider's message id, which we only learn when the
provider's API answers; a fast provider may call back before that answer is read. So each message
also carries our own reference, which its callbacks bring back:

- Twilio: `ref` in the query string of the StatusCallback URL we give with each message (Twilio
  signs the whole URL, query included, so the reference is as signed as the rest);
- WhatsApp Cloud: `biz_opaque_callback_data` on the message, which Meta returns in its status
  webhooks.

A reference is "message-<pk>" (a transactional consent.models.Message) or "delivery-<pk>" (a
broadcast delivery). Anything else is not one of ours and is ignored, never an error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings

from consent.phones import InvalidPhoneNumber, parse_phone

logger = logging.getLogger(__name__)

MESSAGE = "message"
DELIVERY = "delivery"
TWILIO_STATUS_PATH = "/webhooks/twilio/status/"

_REFERENCE = re.compile(r"(message|delivery)-([1-9][0-9]{0,17})")


@dataclass(frozen=True)
class Reference:
    """A record of ours named in a status callback: its kind ("message" | "delivery") and primary key."""

    kind: str
    pk: int

    def __str__(self) -> str:
        return f"{self.kind}-{self.pk}"


def parse_reference(value: Any) -> Reference | None:
    """The Reference `value` spells, or None for anything else (absent, malformed, not ours)."""
    if not isinstance(value, str):
        return None
    match = _REFERENCE.fullmatch(value)
    return Reference(match[1], int(match[2])) if match else None


def twilio_status_callback(reference: str = "") -> str:
    """The StatusCallback URL for one message: our status webhook, with the message's reference when it is one of ours."""
    url = settings.PUBLIC_BASE_URL + TWILIO_STATUS_PATH
    return f"{url}?{urlencode({'ref': reference})}" if parse_reference(reference) else url


def recipient_may_be(*, channel: str, recipient: str, phone: str | None) -> bool:
    """Whether a callback about `recipient` may be about a message we sent to `phone` on `channel`.

    On SMS the callback names the number the message went to (Twilio's `To`), which must then be
    the record's own number. WhatsApp's `recipient_id` is the person's WhatsApp id, which for some
    countries is not spelled like the number we sent to, so it is not compared.
    """
    if not recipient or channel != "sms":
        return True
    if not phone:
        return False
    try:
        return parse_phone(recipient).e164 == phone
    except InvalidPhoneNumber:
        return False


def record_for(update, *, kind: str, by_id, by_reference, unclaimed):
    """The record of ours (a message or a delivery) a status update is about, or None.

    Found by the provider's message id (`by_id`, a queryset of the update's records). Else, when
    the update carries our reference of this `kind`, the record it names in `by_reference` may be
    the one, if it has no provider id yet (the callback came before the provider's API answer was
    recorded) and, on SMS, went to the callback's number: the provider id is then recorded on it,
    so that the sender's recording and later callbacks agree. `unclaimed` selects the records that
    may take it; being conditional, of two copies of a callback racing here only one claims the
    record, and the other finds it by the provider id once the first has committed. A reference
    to a record with another provider id, or on another channel, is ignored.
    """
    record = by_id.first()
    reference = update.reference
    if record is not None or reference is None or reference.kind != kind:
        return record
    candidate = by_reference.filter(pk=reference.pk).first()
    if candidate is None or candidate.provider_message_id:
        logger.info("status %s: reference %s ignored (no such %s, or it has another provider id)",
                    update.provider_message_id, reference, kind)
        return None
    if not recipient_may_be(channel=update.channel, recipient=update.recipient, phone=candidate.contact.phone):
        logger.warning("status %s: reference %s ignored: sent to another number", update.provider_message_id, reference)
        return None
    unclaimed.filter(pk=candidate.pk).update(provider_message_id=update.provider_message_id)
    return by_id.first()
