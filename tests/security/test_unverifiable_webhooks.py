"""Without the provider's secret (the console provider's default) a webhook cannot verify: the 403 says why."""

import json

import pytest

pytestmark = pytest.mark.django_db

TWILIO_HINT = ("TWILIO_AUTH_TOKEN is not set: webhooks cannot be verified; use manage.py inbound to try the service "
               "as a customer.")
WHATSAPP_HINT = ("WHATSAPP_APP_SECRET is not set: webhooks cannot be verified; use manage.py inbound to try the "
                 "service as a customer.")


@pytest.mark.parametrize("path", ["/webhooks/twilio/inbound/", "/webhooks/twilio/status/"])
def test_twilio_without_auth_token_says_why(client, settings, app_log, path):
    settings.TWILIO_AUTH_TOKEN = ""
    response = client.post(path, data="From=%2B14155550123&Body=STOP&MessageSid=SM1",
                           content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE="x")
    assert response.status_code == 403
    assert response.json() == {"detail": TWILIO_HINT}
    warnings = [line for line in app_log.getvalue().splitlines() if TWILIO_HINT in line]
    assert len(warnings) == 1 and " WARNING " in warnings[0]


def test_whatsapp_without_app_secret_says_why(client, settings, app_log):
    settings.WHATSAPP_APP_SECRET = ""
    response = client.post("/webhooks/whatsapp/", data=json.dumps({"object": "whatsapp_business_account"}),
                           content_type="application/json", HTTP_X_HUB_SIGNATURE_256="sha256=00")
    assert response.status_code == 403
    assert response.json() == {"detail": WHATSAPP_HINT}
    assert sum(WHATSAPP_HINT in line and " WARNING " in line for line in app_log.getvalue().splitlines()) == 1


def test_a_wrong_signature_with_a_token_set_is_still_the_plain_403(client, provider_secrets, app_log):
    response = client.post("/webhooks/twilio/inbound/", data="From=%2B14155550123&Body=STOP&MessageSid=SM1",
                           content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE="x")
    assert response.status_code == 403 and response.json() == {"detail": "Invalid X-Twilio-Signature."}
    assert "manage.py inbound" not in app_log.getvalue()
