"""The webhook's path with a real worker: the webhook records and answers, the worker applies."""

import pytest
from django.http import QueryDict

from consent import services
from consent.models import Consent, ConsentStatus, InboundReceipt, Message, Source
from consent.signatures import twilio_signature
from tests.prompts import deliver_prompts

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PHONE = "+14155550123"
TOKEN = "worker-intake-token"


def test_a_signed_stop_is_recorded_then_applied_by_the_worker(topic, client, settings, celery_worker_process):
    result = services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API, evidence={})
    deliver_prompts(contact=result.consent.contact, topic=topic, channel="sms")
    settings.TWILIO_AUTH_TOKEN = TOKEN
    path = "/webhooks/twilio/inbound/"
    for sid, text in (("SMworker1", "YES"), ("SMworker2", "STOP")):
        form = QueryDict(mutable=True)
        form.update({"MessageSid": sid, "From": PHONE, "To": "+15005550006", "Body": text, "NumMedia": "0"})
        response = client.post(path, data=form.urlencode(), content_type="application/x-www-form-urlencoded",
                               HTTP_X_TWILIO_SIGNATURE=twilio_signature(TOKEN, settings.PUBLIC_BASE_URL + path, form))
        assert response.status_code == 200
    celery_worker_process(lambda: not InboundReceipt.objects.filter(applied_at__isnull=True).exists(),
                          what="the worker to apply both messages")
    assert Consent.objects.get(contact__phone=PHONE).status == ConsentStatus.REVOKED
    assert Message.objects.filter(kind=Message.Kind.STOP_REPLY).count() == 1
    assert set(InboundReceipt.objects.values_list("outcome", flat=True)) == {"applied"}
