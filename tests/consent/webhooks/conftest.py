"""Fixtures to post signed provider webhooks at the test client."""

import pytest

from consent.signatures import twilio_signature, whatsapp_signature

TWILIO_TOKEN = "test-twilio-auth-token"
WHATSAPP_SECRET = "test-whatsapp-app-secret"
WHATSAPP_VERIFY = "test-verify-token"


@pytest.fixture
def webhook_settings(settings):
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.WHATSAPP_APP_SECRET = WHATSAPP_SECRET
    settings.WHATSAPP_VERIFY_TOKEN = WHATSAPP_VERIFY
    return settings


@pytest.fixture
def twilio_post(client, webhook_settings):
    """twilio_post(path, form, signature=None, **headers): a signed form post as Twilio sends it."""

    def post(path, form, *, signature=None, token=TWILIO_TOKEN, **headers):
        url = webhook_settings.PUBLIC_BASE_URL + path
        if signature is None:
            signature = twilio_signature(token, url, form)
        return client.post(path, data=form.urlencode(), content_type="application/x-www-form-urlencoded",
                           HTTP_X_TWILIO_SIGNATURE=signature, **headers)

    return post


@pytest.fixture
def whatsapp_post(client, webhook_settings):
    """whatsapp_post(body_bytes, signature=None): a signed WhatsApp Cloud webhook POST (signature=False: unsigned)."""

    def post(body, *, signature=None, secret=WHATSAPP_SECRET):
        if signature is None:
            signature = whatsapp_signature(secret, body)
        headers = {} if signature is False else {"HTTP_X_HUB_SIGNATURE_256": signature}
        return client.post("/webhooks/whatsapp/", data=body, content_type="application/json", **headers)

    return post
