"""The hook other apps use to learn about provider delivery statuses.

`provider_status_received` is sent once per status callback (Twilio) or status record
(WhatsApp Cloud), inside the webhook's database transaction, after our own transactional
Message (if any) was updated and after an opt-out (21610 / 131050) revoked consent or an
invalid-number error suppressed the number. Keyword arguments:

- ``sender``: the provider name, "twilio" or "whatsapp_cloud"
- ``update``: consent.webhooks.parsers.StatusUpdate (channel, provider_message_id, status,
  raw_status, recipient, error_code, error_message, occurred_at, callback_data)
- ``contact``: the consent.models.Contact it concerns, or None when unknown
- ``message``: the transactional consent.models.Message it refers to, or None (e.g. a
  broadcast delivery, which lives in the broadcasts app)

Receivers must be idempotent: providers redeliver callbacks and deliver them out of order.
An exception in a receiver rolls the whole callback back and the provider is asked to retry
(HTTP 503). Connect in an AppConfig.ready():

    from consent.webhooks.signals import provider_status_received
    provider_status_received.connect(delivery_status_apply_receiver, dispatch_uid="broadcasts.delivery_status")
"""

from django.dispatch import Signal

provider_status_received = Signal()
