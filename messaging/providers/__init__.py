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
    from .console import ConsoleProvider

    if channel == "sms":
        if settings.SMS_PROVIDER == "twilio":
            from .twilio import TwilioProvider

            return TwilioProvider.from_settings()
        return ConsoleProvider("sms")
    if channel == "whatsapp":
        if settings.WHATSAPP_PROVIDER == "cloud":
            from .whatsapp import WhatsAppCloudProvider

            return WhatsAppCloudProvider.from_settings()
        return ConsoleProvider("whatsapp")
    raise ValueError(f"unknown channel {channel!r}")
