"""The hooks other apps use to learn about provider delivery statuses.

`provider_status_match` is sent first, once per status callback (Twilio) or status record
(WhatsApp Cloud) that is not about one of our transactional Messages, inside the webhook's
database transaction and before anything is applied. A receiver that owns the message the
update is about (a broadcast delivery, say) finds it by the update's provider message id, or
else by our own reference on the callback (``update.reference``, see references.py) as long as
no provider id is recorded on it yet; it then locks it, records the provider id on it if it was
missing, and returns an OutboundRecord: the contact it went to and when. Opt-out and
invalid-number errors then act on that contact (rule 10), and only on consents given before
that moment. Receivers that do not recognise the update return None. Keyword arguments:
``sender`` (the provider name) and ``update``.

`provider_status_received` is sent once per status callback or status record, in the same
transaction, after our own transactional Message (if any) was updated and after an opt-out
(21610 / 131050) revoked consent or an invalid-number error suppressed the number. Keyword
arguments:

- ``sender``: the provider name, "twilio" or "whatsapp_cloud"
- ``update``: consent.webhooks.parsers.StatusUpdate (channel, provider_message_id, status,
  raw_status, recipient, error_code, error_message, occurred_at, callback_data, reference)
- ``contact``: the consent.models.Contact it concerns, or None when unknown
- ``message``: the transactional consent.models.Message it refers to, or None (e.g. a
  broadcast delivery, which lives in the broadcasts app)

Receivers of both must be idempotent: providers redeliver callbacks and deliver them out of
order. An exception in a receiver rolls the whole callback back and the provider is asked to
retry (HTTP 503). Connect in an AppConfig.ready():

    from consent.webhooks.signals import provider_status_received
    provider_status_received.connect(delivery_status_apply_receiver, dispatch_uid="broadcasts.delivery_status")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.dispatch import Signal

if TYPE_CHECKING:
    from consent.models import Contact


@dataclass(frozen=True)
class OutboundRecord:
    """A message another app sent, as a `provider_status_match` receiver found it."""

    contact: Contact
    sent_at: datetime | None  # when it was handed to the provider (None: unknown)
    evidence: dict = field(default_factory=dict)  # what names it in a ledger event, e.g. {"delivery_id": 7}


provider_status_match = Signal()
provider_status_received = Signal()
