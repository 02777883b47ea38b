"""Whatever a correctly signed request carries, the answer is never a 500 (property tests)."""

import pytest
from django.http import QueryDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.signatures import twilio_signature, whatsapp_signature

from .conftest import TWILIO_TOKEN, WHATSAPP_SECRET

pytestmark = pytest.mark.django_db

FIELDS = ["MessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "ButtonPayload", "ButtonText", "OptOutType",
          "MessageStatus", "ErrorCode", "ErrorMessage", "ProfileName", "AccountSid"]
values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["+14155550123", "whatsapp:+33612345678", "STOP", "YES", "JOIN PROMO", "failed", "delivered",
                     "21610", "131050", "SM123", "", " ", "\x00", "%", "&=", "é" * 5]),
)
forms = st.lists(st.tuples(st.sampled_from(FIELDS), values), max_size=10)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def signed_form_post(client, path, pairs):
    form = QueryDict(mutable=True)
    for name, value in pairs:
        form.appendlist(name, value)
    signature = twilio_signature(TWILIO_TOKEN, "http://testserver" + path, form)
    return client.post(path, data=form.urlencode(), content_type="application/x-www-form-urlencoded",
                       HTTP_X_TWILIO_SIGNATURE=signature)


@FUZZ
@given(pairs=forms, path=st.sampled_from(["/webhooks/twilio/inbound/", "/webhooks/twilio/status/"]))
def test_any_signed_twilio_form_is_answered_without_a_500(client, webhook_settings, topic, pairs, path):
    response = signed_form_post(client, path, pairs)
    assert response.status_code in (200, 204, 400), response.content


@FUZZ
@given(body=st.binary(max_size=300))
def test_any_signed_bytes_to_twilio_are_not_a_500(client, webhook_settings, body):
    response = client.post("/webhooks/twilio/inbound/", data=body, content_type="application/x-www-form-urlencoded",
                           HTTP_X_TWILIO_SIGNATURE="anything")
    assert response.status_code in (400, 403)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    | st.sampled_from(["whatsapp_business_account", "messages", "statuses", "user_preferences", "text", "button",
                       "interactive", "failed", "stop", "33612345678", "wamid.X"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["object", "entry", "changes", "value", "field", "messages", "statuses", "user_preferences",
                         "from", "id", "type", "text", "body", "status", "errors", "code", "wa_id", "category",
                         "timestamp", "recipient_id", "interactive", "button", "payload", "button_reply", "title"]),
        children, max_size=5),
    max_leaves=40,
)


@FUZZ
@given(payload=json_values)
def test_any_signed_whatsapp_json_is_answered_without_a_500(client, webhook_settings, topic, payload):
    import json

    if isinstance(payload, dict):
        payload["object"] = "whatsapp_business_account"
    body = json.dumps(payload).encode()
    response = client.post("/webhooks/whatsapp/", data=body, content_type="application/json",
                           HTTP_X_HUB_SIGNATURE_256=whatsapp_signature(WHATSAPP_SECRET, body))
    assert response.status_code in (200, 400), response.content
