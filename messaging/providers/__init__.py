"""Provider clients behind one interface; get_provider(channel) picks the configured one."""

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
from .console import ConsoleProvider
from .twilio import TwilioProvider
from .whatsapp import WhatsAppCloudProvider

__all__ = [
    "InvalidRecipientError",
    "OutgoingMessage",
    "PermanentProviderError",
    "Provider",
    "ProviderError",
    "RecipientOptedOutError",
    "SendResult",
    "TransientProviderError",
    "get_provider",
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
