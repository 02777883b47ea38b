"""Double opt-in through the services: request, prompt, confirm by reply or token, revoke."""

from datetime import timedelta
from itertools import pairwise

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction

from consent import selectors, services
from consent.models import ConsentEvent, ConsentStatus, EventKind, Message, Source
from consent.verification import verify_chain
from tests.prompts import deliver_prompts, delivered_token

pytestmark = pytest.mark.django_db


def request(topic, phone="+14155550123", channel="sms", **kw):
    return services.optin_request(phone=phone, topic=topic, channel=channel, source=Source.API,
                                  evidence={"ip": "203.0.113.9"}, **kw)


def request_token(topic, **kw):
    """Request, hand the prompt to the provider, and return the token the provider got."""
    request(topic, **kw)
    return delivered_token()


def test_request_makes_pending_and_queues_prompt(topic, run_on_commit, outbox):
    with run_on_commit():
        result = request(topic)
    consent = result.consent
    assert consent.status == ConsentStatus.PENDING
    assert consent.contact.phone == "+14155550123"
    assert consent.contact.country == "US"
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    assert prompt.status == Message.Status.SENT
    assert "YES" in prompt.body and "STOP" in prompt.body
    assert "/optin/confirm/[redacted]/" in prompt.body  # the token went to the provider only
    assert f"/optin/confirm/{outbox.token()}/" in outbox.sent[0].body
    assert outbox.sent[0].body == prompt.body.replace("[redacted]", outbox.token())
    kinds = list(ConsentEvent.objects.values_list("kind", flat=True))
    assert kinds == [EventKind.REQUESTED, EventKind.CONFIRMATION_SENT]
    assert not selectors.consent_is_current(consent)


def test_confirm_by_reply_activates_every_pending_consent_on_channel(topic, now):
    other = services.topic_create(slug="news", name="News", keywords=["NEWS"], consent_text="c", confirmation_message="m",
                                  help_message="h", consent_ttl_days=None)
    request(topic)
    request(other)
    request(topic, channel="whatsapp")
    deliver_prompts()
    contact = selectors.contact_get_by_phone("+14155550123")
    confirmed = services.optin_confirm_by_reply(contact=contact, channel="sms", source=Source.SMS_KEYWORD,
                                                evidence={"inbound_text": "YES"})
    assert {c.topic.slug for c in confirmed} == {"promo", "news"}
    by_topic = {c.topic.slug: c for c in confirmed}
    assert by_topic["promo"].expires_at == by_topic["promo"].confirmed_at + timedelta(days=365)
    assert by_topic["news"].expires_at is None
    whatsapp = contact.consents.get(channel="whatsapp")
    assert whatsapp.status == ConsentStatus.PENDING


def test_reply_after_the_window_confirms_nothing(topic):
    request(topic)
    deliver_prompts()
    contact = selectors.contact_get_by_phone("+14155550123")
    with time_machine.travel(timedelta(hours=49)):
        assert services.optin_confirm_by_reply(contact=contact, channel="sms", source=Source.SMS_KEYWORD) == []
    assert contact.consents.get().status == ConsentStatus.PENDING


def test_token_confirms_once_only(topic):
    token = request_token(topic)
    consent = services.optin_confirm_by_token(token=token, source=Source.WEB_FORM)
    assert consent.status == ConsentStatus.ACTIVE
    with pytest.raises(ValidationError) as exc:
        services.optin_confirm_by_token(token=token, source=Source.WEB_FORM)
    assert "already been used" in str(exc.value)


@pytest.mark.parametrize("token", ["", "garbage", "x" * 300, "abc:def:ghi"])
def test_bad_tokens_are_refused(topic, token):
    request(topic)
    with pytest.raises(ValidationError):
        services.optin_confirm_by_token(token=token, source=Source.WEB_FORM)
    assert not ConsentEvent.objects.filter(kind=EventKind.CONFIRMED).exists()


def test_expired_token_is_refused(topic):
    token = request_token(topic)
    with time_machine.travel(timedelta(hours=49)):
        with pytest.raises(ValidationError) as exc:
            services.optin_confirm_by_token(token=token, source=Source.WEB_FORM)
    assert "expired" in str(exc.value)


def test_token_after_revocation_is_refused(topic):
    result = request(topic)
    token = delivered_token()
    services.consent_revoke(contact=result.consent.contact, channel="sms", source=Source.SMS_KEYWORD)
    with pytest.raises(ValidationError):
        services.optin_confirm_by_token(token=token, source=Source.WEB_FORM)


def test_consent_expires_at_read_time_without_the_job(topic):
    token = request_token(topic)
    consent = services.optin_confirm_by_token(token=token, source=Source.WEB_FORM)
    assert selectors.consent_is_current(consent)
    with time_machine.travel(consent.expires_at + timedelta(seconds=1)):
        assert not selectors.consent_is_current(consent)
        assert selectors.effective_status(consent) == "expired"
        assert not selectors.audience_consents(topic=topic, channel="sms").exists()
        assert services.consents_expire_due() == 1
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.EXPIRED
    assert ConsentEvent.objects.filter(kind=EventKind.EXPIRED).count() == 1


def test_revoke_then_restart_targets_last_revoked_topics(topic):
    result = request(topic)
    contact = result.consent.contact
    services.optin_confirm_by_token(token=delivered_token(), source=Source.WEB_FORM)
    revoked = services.consent_revoke(contact=contact, channel="sms", source=Source.SMS_KEYWORD, reason="STOP")
    assert [c.status for c in revoked] == [ConsentStatus.REVOKED]
    assert services.topics_last_revoked(contact=contact, channel="sms") == [topic]
    assert not selectors.audience_consents(topic=topic, channel="sms").exists()


def test_suppressed_number_cannot_opt_in(topic):
    contact = services.contact_get_or_create(phone="+14155550123")
    services.contact_suppress(contact=contact, reason="invalid_number", source=Source.PROVIDER)
    with pytest.raises(ValidationError) as exc:
        request(topic)
    assert "phone" in exc.value.message_dict


def test_request_for_current_consent_changes_nothing(topic):
    services.optin_confirm_by_token(token=request_token(topic), source=Source.WEB_FORM)
    before, messages = ConsentEvent.objects.count(), Message.objects.count()
    again = request(topic)
    assert again.created is False
    assert Message.objects.count() == messages  # no new prompt (the welcome of the confirmation is older)
    assert ConsentEvent.objects.count() == before


def test_every_change_is_chained_and_verifies(topic):
    result = request(topic)
    services.optin_confirm_by_token(token=delivered_token(), source=Source.WEB_FORM)
    services.consent_revoke(contact=result.consent.contact, channel="sms", source=Source.API)
    events = list(ConsentEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for previous, event in pairwise(events):
        assert event.prev_hash == previous.hash
    assert "+14155550123" not in str([e.evidence for e in events]) + "".join(e.subject for e in events)
    report = verify_chain()
    assert report.ok, report


def test_database_refuses_update_and_delete_of_events(topic):
    request(topic)
    event = ConsentEvent.objects.first()
    with pytest.raises(DatabaseError) as exc:
        with transaction.atomic():
            ConsentEvent.objects.filter(pk=event.pk).update(kind="confirmed")
    assert "append-only" in str(exc.value)
    with pytest.raises(DatabaseError):
        with transaction.atomic():
            ConsentEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(DatabaseError):
        with transaction.atomic():
            topic.current_text.__class__.objects.filter(pk=topic.current_text_id).update(consent_text="changed")


def test_topic_text_edit_makes_new_version(topic):
    old = topic.current_text
    topic = services.topic_update(topic=topic, consent_text="New words")
    assert topic.current_text.version == old.version + 1
    assert topic.current_text.sha256 != old.sha256
    old.refresh_from_db()
    assert old.consent_text.startswith("I agree")


def test_import_marks_old_records_expired_and_needs_evidence(topic, now):
    records = [
        services.ImportRecord(phone="+33612345678", topic=topic, channel="sms", confirmed_at=now - timedelta(days=30),
                              evidence={"form": "legacy"}, source_detail="crm"),
        services.ImportRecord(phone="+33612345679", topic=topic, channel="sms", confirmed_at=now - timedelta(days=400),
                              evidence={"form": "legacy"}),
    ]
    summary = services.consents_import(records=records, actor="user:admin")
    assert (summary["active"], summary["expired"]) == (1, 1)
    assert selectors.audience_consents(topic=topic, channel="sms").count() == 1
    with pytest.raises(ValidationError):
        services.consents_import(records=[services.ImportRecord(phone="+33612345670", topic=topic, channel="sms",
                                                                confirmed_at=now, evidence={})], actor="x")


def test_import_never_overrides_a_local_revocation(topic, now):
    result = request(topic)
    services.consent_revoke(contact=result.consent.contact, channel="sms", source=Source.SMS_KEYWORD)
    summary = services.consents_import(records=[services.ImportRecord(
        phone="+14155550123", topic=topic, channel="sms", confirmed_at=now - timedelta(days=1), evidence={"a": "b"})],
        actor="x")
    assert summary["imported"] == 0 and summary["skipped"][0]["index"] == 0
    assert result.consent.contact.consents.get().status == ConsentStatus.REVOKED


def test_unique_consent_per_contact_topic_channel(topic):
    consent = request(topic).consent
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            consent.__class__.objects.create(contact=consent.contact, topic=topic, channel="sms", status="pending",
                                             text=consent.text, source="api")


# --- what a confirmation confirms -----------------------------------------------------------


def news_topic():
    return services.topic_create(slug="news", name="News", keywords=["NEWS"], consent_text="c",
                                 confirmation_message="News: reply YES", help_message="h", consent_ttl_days=None)


def test_a_token_confirms_only_the_consent_it_was_issued_for(topic):
    """The link proves the person saw that prompt, not the texts of the other topics pending on the channel."""
    news = news_topic()
    request(topic)
    (promo_token,) = deliver_prompts()
    request(news)
    (news_token,) = deliver_prompts()
    confirmed = services.optin_confirm_by_token(token=promo_token, source=Source.WEB_FORM)
    assert confirmed.topic == topic and confirmed.status == ConsentStatus.ACTIVE
    assert news.consents.get().status == ConsentStatus.PENDING
    assert ConsentEvent.objects.filter(kind=EventKind.CONFIRMED).count() == 1
    assert services.optin_confirm_by_token(token=news_token, source=Source.WEB_FORM).topic == news


def test_yes_confirms_only_consents_whose_prompt_was_handed_over(topic, monkeypatch):
    from messaging.providers import PermanentProviderError
    from messaging.providers.console import ConsoleProvider

    news, third = news_topic(), services.topic_create(slug="third", name="Third", keywords=["THIRD"], consent_text="c",
                                                      confirmation_message="reply YES", help_message="h",
                                                      consent_ttl_days=None)
    request(topic)
    deliver_prompts()  # sent
    request(news)  # its prompt still queued
    request(third)  # its prompt refused by the provider

    def refuse(provider, message):
        raise PermanentProviderError("21612 unreachable", code="21612")

    monkeypatch.setattr(ConsoleProvider, "send", refuse)
    deliver_prompts(topic=third)
    contact = selectors.contact_get_by_phone("+14155550123")
    confirmed = services.optin_confirm_by_reply(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    assert [c.topic.slug for c in confirmed] == ["promo"]
    assert {c.topic.slug: c.status for c in contact.consents.all()} == {
        "promo": ConsentStatus.ACTIVE, "news": ConsentStatus.PENDING, "third": ConsentStatus.PENDING}


def test_a_prompt_of_an_earlier_request_does_not_let_yes_confirm_a_new_one(topic):
    result = request(topic)
    deliver_prompts()
    services.consent_revoke(contact=result.consent.contact, channel="sms", source=Source.SMS_KEYWORD)
    with time_machine.travel(timedelta(minutes=20)):
        assert request(topic).created  # a new request, its prompt not handed over yet
        assert services.optin_confirm_by_reply(contact=result.consent.contact, channel="sms",
                                               source=Source.SMS_KEYWORD) == []
        deliver_prompts()
        confirmed = services.optin_confirm_by_reply(contact=result.consent.contact, channel="sms",
                                                    source=Source.SMS_KEYWORD)
    assert [c.topic.slug for c in confirmed] == ["promo"]


def test_the_handover_is_recorded_on_the_consent_with_its_ledger_event(topic):
    consent = request(topic).consent
    assert consent.prompted_at is None
    deliver_prompts()
    consent.refresh_from_db()
    sent = ConsentEvent.objects.get(kind=EventKind.CONFIRMATION_SENT)
    assert consent.prompted_at == sent.occurred_at and consent.prompted_at >= consent.requested_at
