"""Transactional messages against the provider stand-in: retries, unknown outcomes, provider feedback."""

import pytest

from consent import messaging, services
from consent.models import ConsentStatus, Message, Source, Suppression

pytestmark = pytest.mark.django_db


def _queued_prompt(topic, phone="+14155550123"):
    services.optin_request(phone=phone, topic=topic, channel="sms", source=Source.API)
    return Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT, contact__phone=phone)


def test_sent_through_twilio_stand_in(topic, use_stand_in):
    message = _queued_prompt(topic)
    assert messaging.message_deliver(message_id=message.pk) == "sent"
    message.refresh_from_db()
    assert message.status == "sent" and message.provider_message_id.startswith("SM")
    assert messaging.message_deliver(message_id=message.pk) == "skipped"  # a second run sends nothing
    assert len(use_stand_in.messages()) == 1


def test_transient_error_requeues_then_fails_on_final_attempt(topic, use_stand_in):
    from messaging.lifecycle import RetryLater

    use_stand_in.configure(faults=[{"kind": "500", "count": 2}])
    message = _queued_prompt(topic)
    with pytest.raises(RetryLater):
        messaging.message_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "queued"
    assert messaging.message_deliver(message_id=message.pk, final_attempt=True) == "failed"


def test_read_timeout_is_unknown_and_never_resent(topic, use_stand_in):
    use_stand_in.configure(faults=[{"kind": "timeout", "delay_ms": 3000, "count": 1}])
    message = _queued_prompt(topic)
    assert messaging.message_deliver(message_id=message.pk) == "unknown"
    message.refresh_from_db()
    assert message.status == "unknown"
    assert messaging.message_deliver(message_id=message.pk) == "skipped"


def test_opt_out_code_revokes_with_source_provider(topic, use_stand_in):
    use_stand_in.configure(recipients={"+14155550123": "opted_out"})
    message = _queued_prompt(topic)
    assert messaging.message_deliver(message_id=message.pk) == "failed"
    consent = message.contact.consents.get()
    assert consent.status == ConsentStatus.REVOKED and consent.source == Source.PROVIDER
    assert message.contact.events.filter(kind="revoked", evidence__provider_error_code="21610").exists()


def test_invalid_number_code_suppresses(topic, use_stand_in):
    use_stand_in.configure(recipients={"+14155550123": "invalid"})
    message = _queued_prompt(topic)
    assert messaging.message_deliver(message_id=message.pk) == "failed"
    assert Suppression.objects.filter(phone_pseudonym=message.contact.phone_pseudonym).exists()


def test_whatsapp_prompt_outside_window_is_the_optin_template(topic, use_stand_in):
    services.optin_request(phone="+14155550123", topic=topic, channel="whatsapp", source=Source.API)
    message = Message.objects.get(channel="whatsapp")
    assert message.template["name"] == "optin_confirmation"
    assert messaging.message_deliver(message_id=message.pk) == "sent"
    sent = use_stand_in.messages()[0]
    assert "optin_confirmation" in str(sent)


def test_broker_down_at_commit_does_not_fail_the_change_and_upkeep_requeues(topic, run_on_commit, monkeypatch):
    from datetime import timedelta

    import time_machine

    from consent import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.message_deliver_task, "apply_async", broker_down)
    with run_on_commit():
        result = services.optin_request(phone="+14155550123", topic=topic, channel="sms", source=Source.API)
    assert result.consent.status == ConsentStatus.PENDING  # the change stands
    message = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    assert message.status == "queued"
    monkeypatch.undo()
    assert messaging.messages_requeue_stale() == 0  # too recent: it may still be on its way
    with time_machine.travel(timedelta(minutes=16)):
        assert tasks.messages_upkeep_task() == {"unknown": 0, "requeued": 1}
    message.refresh_from_db()
    assert message.status == "sent"
