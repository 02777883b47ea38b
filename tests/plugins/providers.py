"""Fixtures for the loopback provider stand-in (tests/stand_in.py).

- `provider_stand_in`: the stand-in (one per test session, on a background thread), reset
  before each test. Inspect it with `.messages(to=...)`, `.stats()`; inject errors with
  `.configure(latency_ms=..., faults=[...], recipients={...})`.
- `use_stand_in`: the same stand-in, with settings pointing both real provider clients at it
  (SMS_PROVIDER="twilio", WHATSAPP_PROVIDER="cloud", dummy credentials), so that
  `get_provider("sms" | "whatsapp")` talks HTTP to 127.0.0.1.
"""

import pytest

from tests.stand_in import StandIn

STAND_IN_TWILIO_ACCOUNT_SID = "AC00000000000000000000000000000000"
STAND_IN_TWILIO_AUTH_TOKEN = "stand-in-auth-token"
STAND_IN_TWILIO_FROM_NUMBER = "+15005550006"
STAND_IN_WHATSAPP_ACCESS_TOKEN = "stand-in-access-token"
STAND_IN_WHATSAPP_PHONE_NUMBER_ID = "100000000000001"


@pytest.fixture(scope="session")
def provider_stand_in_server():
    """The stand-in server for the whole session (prefer `provider_stand_in`, which resets it)."""
    server = StandIn().start()
    yield server
    server.stop()


@pytest.fixture
def provider_stand_in(provider_stand_in_server):
    """The session's stand-in, with no messages, faults, per-recipient errors or latency."""
    provider_stand_in_server.reset()
    yield provider_stand_in_server
    provider_stand_in_server.reset()


@pytest.fixture
def use_stand_in(settings, provider_stand_in):
    """Point the Twilio and WhatsApp Cloud providers at the stand-in; returns the stand-in."""
    settings.SMS_PROVIDER = "twilio"
    settings.WHATSAPP_PROVIDER = "cloud"
    settings.TWILIO_ACCOUNT_SID = STAND_IN_TWILIO_ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = STAND_IN_TWILIO_AUTH_TOKEN
    settings.TWILIO_FROM_NUMBER = STAND_IN_TWILIO_FROM_NUMBER
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_API_BASE = provider_stand_in.url
    settings.WHATSAPP_ACCESS_TOKEN = STAND_IN_WHATSAPP_ACCESS_TOKEN
    settings.WHATSAPP_PHONE_NUMBER_ID = STAND_IN_WHATSAPP_PHONE_NUMBER_ID
    settings.WHATSAPP_API_BASE = f"{provider_stand_in.url}/v23.0"
    # Short enough that a "timeout" fault costs a test two seconds, not ten.
    settings.PROVIDER_TIMEOUT = (2.0, 2.0)
    return provider_stand_in


@pytest.fixture
def outbox():
    """Every message handed to the console provider during the test (`.sent`, `.tokens()`, `.token()`)."""
    from tests.prompts import Outbox

    box = Outbox()
    with box.record():
        yield box
