"""Provider clients behind one interface; get_provider(channel) picks the configured one."""

import threading

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
from .console import ConsoleProvider
from .twilio import TwilioProvider
from .whatsapp import WhatsAppCloudProvider

__all__ = [
    "HeldBackError",
    "InvalidRecipientError",
    "OutgoingMessage",
    "PermanentProviderError",
    "Provider",
    "ProviderError",
    "RecipientOptedOutError",
    "SendResult",
    "TransientProviderError",
    "get_provider",
    "thread_provider",
]


def get_provider(channel: str) -> Provider:
    """The provider configured for `channel` ("sms" or "whatsapp")."""
    if channel == "sms":
        if settings.SMS_PROVIDER == "twilio":
            return TwilioProvider.from_settings()
        return ConsoleProvider("sms")
    if channel == "whatsapp":
        if settings.WHATSAPP_PROVIDER == "cloud":
            return WhatsAppCloudProvider.from_settings()
        return ConsoleProvider("whatsapp")
    raise ValueError(f"unknown channel {channel!r}")


_local = threading.local()


def thread_provider(channel: str) -> Provider:
    """This thread's own provider for `channel` (and so its own keep-alive session), rebuilt when settings change.

    For senders that run many threads: the per-process shared client keeps only ten pooled
    connections, too few for a broadcast's sender threads, which would then reconnect per message.
    """
    key = (channel, settings.SMS_PROVIDER, settings.WHATSAPP_PROVIDER, settings.TWILIO_API_BASE,
           settings.WHATSAPP_API_BASE, settings.TWILIO_ACCOUNT_SID, settings.WHATSAPP_PHONE_NUMBER_ID)
    providers = _local.__dict__.setdefault("providers", {})
    provider = providers.get(key)
    if provider is None:
        if channel == "sms" and settings.SMS_PROVIDER == "twilio":
            provider = TwilioProvider.from_settings(shared=False)
        elif channel == "whatsapp" and settings.WHATSAPP_PROVIDER == "cloud":
            provider = WhatsAppCloudProvider.from_settings(shared=False)
        else:
            provider = get_provider(channel)
        providers[key] = provider
    return provider
