"""The double opt-in prompt travels through a real Celery worker process and the configured broker."""

import pytest

from consent import services
from consent.models import ConsentEvent, EventKind, Message, Source
from tests.prompts import token_in

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_prompt_is_sent_by_a_real_worker(topic, use_stand_in, provider_stand_in, celery_worker_process):
    result = services.optin_request(phone="+14155550123", topic=topic, channel="sms", source=Source.API,
                                    evidence={"ip": "203.0.113.1"})
    celery_worker_process(
        lambda: Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT, status=Message.Status.SENT).exists(),
        what="the prompt to be sent",
    )
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    assert prompt.provider_message_id.startswith("SM")
    assert ConsentEvent.objects.filter(kind=EventKind.CONFIRMATION_SENT).count() == 1
    received = provider_stand_in.messages()
    assert [m["to"] for m in received] == ["+14155550123"]
    # The token is only in what the provider got; the stored prompt has it redacted. And it works.
    token = token_in(received[0])
    assert token and token not in prompt.body and "/optin/confirm/[redacted]/" in prompt.body
    assert services.optin_confirm_by_token(token=token, source=Source.WEB_FORM).pk == result.consent.pk
