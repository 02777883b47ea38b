"""Helpers for the security tests: the application's own log output, signed webhooks."""

import io
import logging

import pytest
from django.http import QueryDict

from config.logging import PersonalDataFilter
from consent.signatures import twilio_signature

TWILIO_TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # the shape of a real Twilio auth token
WHATSAPP_SECRET = "9a8b7c6d5e4f30211203f4e5d6c7b8a9"


@pytest.fixture
def app_log():
    """What the configured log handlers write (the filter runs as in production): app_log.getvalue()."""
    handlers = [h for h in logging.getLogger().handlers if any(isinstance(f, PersonalDataFilter) for f in h.filters)]
    assert handlers, "settings.LOGGING installs no handler with the personal-data filter"
    buffer = io.StringIO()
    previous = [h.setStream(buffer) for h in handlers]
    try:
        yield buffer
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)


@pytest.fixture
def provider_secrets(settings):
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.WHATSAPP_APP_SECRET = WHATSAPP_SECRET
    settings.WHATSAPP_VERIFY_TOKEN = "verify-me-please"
    return settings


@pytest.fixture
def twilio_inbound(client, provider_secrets):
    """twilio_inbound(phone, body, sid): post a signed Twilio inbound SMS as Twilio would."""

    def post(phone, body, sid, path="/webhooks/twilio/inbound/"):
        form = QueryDict(mutable=True)
        form.update({"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32,
                     "From": phone, "To": "+15005550006", "Body": body, "NumMedia": "0", "NumSegments": "1",
                     "ApiVersion": "2010-04-01"})
        signature = twilio_signature(TWILIO_TOKEN, provider_secrets.PUBLIC_BASE_URL + path, form)
        return client.post(path, data=form.urlencode(), content_type="application/x-www-form-urlencoded",
                           HTTP_X_TWILIO_SIGNATURE=signature)

    return post
