"""Applying inbound keywords through the consent services (no HTTP): each intent, replies, edge cases."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from consent import inbound, services
from consent.models import Consent, ConsentStatus, Contact, EventKind, Message, Source, Suppression
from consent.webhooks.parsers import InboundMessage
from messaging import lifecycle
from messaging import sql as lifecycle_sql
from tests.prompts import deliver_prompts, delivered_token

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"
TRANSACTIONAL = {
    Message.Kind.CONFIRMATION_PROMPT, Message.Kind.CONFIRMED_REPLY, Message.Kind.STOP_REPLY, Message.Kind.HELP_REPLY,
    Message.Kind.NOTHING_PENDING_REPLY, Message.Kind.REPLY,
}
_counter = iter(range(1, 10**6))


def receive(text, *, phone=PHONE, channel="sms", **kwargs):
    message = InboundMessage(channel=channel, provider_message_id=f"SMtest{next(_counter)}", sender=phone, text=text, **kwargs)
    return inbound.inbound_message_receive(message=message, provider="twilio")


@pytest.fixture
def news(db):
    return services.topic_create(slug="news", name="Acme news", keywords=["NEWS"], consent_text="News consent",
                                 confirmation_message="Acme news: reply YES to confirm, STOP to cancel.",
                                 help_message="Acme news help: news@acme.example. STOP to opt out.", consent_ttl_days=None)


def subscribe(topic, channel="sms", phone=PHONE):
    result = services.optin_request(phone=phone, topic=topic, channel=channel, source=Source.API, evidence={"ip": "192.0.2.1"})
    deliver_prompts(contact=result.consent.contact, topic=topic, channel=channel)  # YES confirms only what was handed to the provider
    services.optin_confirm_by_reply(contact=result.consent.contact, channel=channel, source=Source.API)
    result.consent.refresh_from_db()
    return result.consent


def replies(kind=None):
    qs = Message.objects.filter(direction=Message.Direction.OUTBOUND).exclude(kind=Message.Kind.CONFIRMATION_PROMPT)
    return list(qs.filter(kind=kind) if kind else qs)


def test_stop_topic_revokes_only_that_topic(topic, news):
    promo, news_consent = subscribe(topic), subscribe(news)
    result = receive("STOP NEWS")
    assert [c.topic.slug for c in result.consents] == ["news"]
    promo.refresh_from_db()
    news_consent.refresh_from_db()
    assert (promo.status, news_consent.status) == (ConsentStatus.ACTIVE, ConsentStatus.REVOKED)
    (reply,) = replies(Message.Kind.STOP_REPLY)
    assert "Acme news" in reply.body and reply.topic == news


def test_bare_stop_revokes_pending_and_active_on_the_channel(topic, news):
    subscribe(topic)
    services.optin_request(phone=PHONE, topic=news, channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    whatsapp = subscribe(topic, channel="whatsapp")
    result = receive("stop")
    assert sorted(c.topic.slug for c in result.consents) == ["news", "promo"]
    whatsapp.refresh_from_db()
    assert whatsapp.status == ConsentStatus.ACTIVE
    assert len(replies(Message.Kind.STOP_REPLY)) == 1


def test_stop_kills_pending_confirmation_links(topic):
    services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    token = delivered_token()
    receive("STOP")
    with pytest.raises(services.TokenError):
        services.optin_confirm_by_token(token=token, source=Source.WEB_FORM)


def test_start_restarts_the_topics_last_revoked(topic, news):
    subscribe(topic)
    subscribe(news)
    receive("STOP NEWS")
    result = receive("START")
    assert [c.topic.slug for c in result.consents] == ["news"]
    assert news.consents.get().status == ConsentStatus.PENDING
    assert topic.consents.get().status == ConsentStatus.ACTIVE
    prompt = Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT).last()
    assert prompt.topic == news and "YES" in prompt.body


def test_start_after_bare_stop_restarts_every_topic_and_yes_confirms_them(topic, news, settings):
    settings.OPTIN_MAX_PER_NUMBER_PER_HOUR = 4  # two topics, each prompted twice
    subscribe(topic)
    subscribe(news)
    receive("STOP")
    receive("unstop")
    deliver_prompts()
    assert set(Contact.objects.get().consents.values_list("status", flat=True)) == {ConsentStatus.PENDING}
    result = receive("YES")
    assert sorted(c.topic.slug for c in result.consents) == ["news", "promo"]
    (reply,) = replies(Message.Kind.CONFIRMED_REPLY)
    assert "Acme promotions" in reply.body and "Acme news" in reply.body


def test_start_with_nothing_revoked_says_how_to_join(topic):
    result = receive("START")
    assert result.consents == []
    (reply,) = replies(Message.Kind.REPLY)
    assert "JOIN PROMO" in reply.body


def test_bare_topic_keyword_joins(topic):
    result = receive("Promo!")
    assert result.intent.kind == "join"
    assert topic.consents.get().status == ConsentStatus.PENDING
    event = topic.events.get(kind=EventKind.REQUESTED)
    assert event.source == Source.SMS_KEYWORD
    assert event.evidence["inbound_text"] == "Promo!"


def test_join_when_already_subscribed_changes_nothing_and_says_so(topic):
    subscribe(topic)
    events = topic.events.count()
    receive("JOIN PROMO")
    assert topic.events.count() == events
    (reply,) = replies(Message.Kind.REPLY)
    assert "already subscribed" in reply.body


def test_yes_with_nothing_pending(topic):
    result = receive("YES")
    assert result.consents == []
    assert len(replies(Message.Kind.NOTHING_PENDING_REPLY)) == 1


def test_yes_after_the_window_confirms_nothing(topic):
    services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    with time_machine.travel(timedelta(hours=49)):
        receive("YES")
    assert topic.consents.get().status == ConsentStatus.PENDING
    assert len(replies(Message.Kind.NOTHING_PENDING_REPLY)) == 1


def test_yes_on_another_channel_does_not_confirm(topic):
    services.optin_request(phone=PHONE, topic=topic, channel="whatsapp", source=Source.API, evidence={"ip": "192.0.2.1"})
    receive("YES", channel="sms")
    assert topic.consents.get().status == ConsentStatus.PENDING


def test_help_answers_with_the_topic_help_text(topic, news):
    subscribe(news)
    receive("HELP")
    body = replies(Message.Kind.HELP_REPLY)[-1].body
    assert body.startswith(news.current_text.help_message + "\nYour subscriptions: http://testserver/preferences/")
    receive("AIDE PROMO")
    assert replies(Message.Kind.HELP_REPLY)[-1].body.startswith(topic.current_text.help_message + "\n")


def test_help_from_a_stranger_lists_every_topic(topic, news):
    receive("info")
    (reply,) = replies(Message.Kind.HELP_REPLY)
    assert topic.current_text.help_message in reply.body and news.current_text.help_message in reply.body


def test_help_with_no_topic_at_all_is_generic():
    receive("HELP")
    (reply,) = replies(Message.Kind.HELP_REPLY)
    assert "STOP" in reply.body


def test_customer_care_message_changes_nothing_and_gets_no_reply(topic):
    consent = subscribe(topic)
    result = receive("stop sending me the red one please")
    assert result.intent.kind == "none"
    assert result.message.body == "stop sending me the red one please"
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE
    assert replies() == []


def test_suppressed_numbers_get_no_reply_and_no_opt_in(topic):
    contact = services.contact_get_or_create(phone=PHONE)
    Suppression.objects.create(phone_pseudonym=contact.phone_pseudonym, reason="invalid_number")
    receive("JOIN PROMO")
    receive("STOP")
    receive("HELP")
    assert not topic.consents.exists()
    assert replies() == []


def test_reply_texts_are_configurable(topic, settings):
    settings.CONSENT_REPLY_TEXTS = {"stop_all": "Bye from Acme. START to come back."}
    subscribe(topic)
    receive("STOP")
    assert replies(Message.Kind.STOP_REPLY)[0].body == "Bye from Acme. START to come back."


def test_configured_keywords_apply(topic, settings):
    settings.CONSENT_KEYWORDS = {**settings.CONSENT_KEYWORDS, "stop": ["HALT"], "help": ["AIDEZMOI"]}
    consent = subscribe(topic)
    assert receive("HELP").intent.kind == "none"
    assert receive("aidezmoi").intent.kind == "help"
    result = receive("halt")
    assert result.intent.kind == "stop"
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    assert consent.source == Source.SMS_KEYWORD


def test_stop_revokes_even_when_the_keyword_list_lacks_it(topic, settings):
    """The law's words always revoke (FCC 24-24): STOP off the keyword list is a revocation in other words."""
    settings.CONSENT_KEYWORDS = {**settings.CONSENT_KEYWORDS, "stop": ["HALT"]}
    consent = subscribe(topic)
    result = receive("STOP")
    assert result.intent.kind == "none" and result.revocation.kind == "revocation"
    consent.refresh_from_db()
    assert (consent.status, consent.source) == (ConsentStatus.REVOKED, Source.SMS_TEXT)


@pytest.mark.parametrize("text", ["STOP", "START", "JOIN PROMO", "PROMO", "YES", "HELP", "hello"])
def test_at_most_one_reply_and_never_promotional(topic, text, run_on_commit):
    subscribe(topic)
    before = set(Message.objects.values_list("pk", flat=True))
    with run_on_commit():
        result = receive(text)
    new = Message.objects.exclude(pk__in=before).filter(direction=Message.Direction.OUTBOUND)
    assert all(m.kind in TRANSACTIONAL for m in new)
    assert new.exclude(kind=Message.Kind.CONFIRMATION_PROMPT).count() <= 1
    assert all(m.status == Message.Status.SENT for m in new)
    assert len(result.replies) <= 1


def test_button_payload_wins_over_its_label(topic):
    subscribe(topic, channel="whatsapp", phone="+33612345678")
    result = receive("Yes please stop", phone="+33612345678", channel="whatsapp", payload="STOP", kind="button")
    assert result.intent.kind == "stop"


def test_label_is_used_when_the_payload_is_no_keyword(topic):
    services.optin_request(phone="+33612345678", topic=topic, channel="whatsapp", source=Source.API, evidence={"ip": "192.0.2.1"})
    deliver_prompts()
    result = receive("Oui", phone="+33612345678", channel="whatsapp", payload="btn-1", kind="interactive")
    assert result.intent.kind == "confirm"
    assert topic.consents.get().status == ConsentStatus.ACTIVE


def test_yes_reply_names_what_the_locked_read_found(topic, monkeypatch):
    """The reply is decided after the pending consents are locked: a change that won before sees nothing pending."""
    services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    monkeypatch.setattr(services, "optin_pending_lock", lambda **kwargs: [])  # someone else confirmed first
    receive("YES")
    (reply,) = replies()
    assert reply.kind == Message.Kind.NOTHING_PENDING_REPLY
    assert topic.consents.get().status == ConsentStatus.PENDING


def test_yes_reply_is_queued_before_the_ledger_append(topic, monkeypatch):
    from consent import ledger

    services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    deliver_prompts()
    order = []
    real_append = ledger.event_append
    monkeypatch.setattr(services, "event_append", lambda **kw: order.append("append") or real_append(**kw))
    real_store = inbound.messages_store
    monkeypatch.setattr(inbound, "messages_store", lambda messages: order.append(len(messages)) or real_store(messages))
    receive("YES")
    assert order == [2, "append"]  # the inbound message and its reply, then the change


def test_stop_reply_is_queued_before_the_ledger_append(topic, monkeypatch):
    """The ledger lock is held from the append to the commit: nothing of ours may follow it."""
    from consent import ledger

    subscribe(topic)
    order = []
    real_append = ledger.event_append

    def append(**kwargs):
        order.append("append")
        return real_append(**kwargs)

    real_store = inbound.messages_store

    def store(messages):
        order.append([m.kind for m in messages])
        return real_store(messages)

    monkeypatch.setattr(services, "event_append", append)
    monkeypatch.setattr(inbound, "messages_store", store)
    receive("STOP")
    assert order == [[Message.Kind.KEYWORD, Message.Kind.STOP_REPLY], "append"]


@pytest.mark.parametrize("text", ["STOP", "YES"])
def test_stop_and_yes_store_the_inbound_message_and_the_reply_in_one_statement(topic, text):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    deliver_prompts()
    with CaptureQueriesContext(connection) as captured:
        result = receive(text)
    inserts = [q["sql"] for q in captured.captured_queries
               if q["sql"].startswith(f'INSERT INTO {connection.ops.quote_name(Message._meta.db_table)}')]
    assert len(inserts) == 1
    stored = Message.objects.filter(contact=result.message.contact).exclude(kind=Message.Kind.CONFIRMATION_PROMPT)
    assert sorted(stored.values_list("direction", "kind")) == sorted([
        (Message.Direction.INBOUND, Message.Kind.KEYWORD),
        (Message.Direction.OUTBOUND, Message.Kind.STOP_REPLY if text == "STOP" else Message.Kind.CONFIRMED_REPLY),
    ])
    assert result.replies[0].pk != result.message.pk and result.message.pk is not None
    assert Message.objects.get(pk=result.message.pk).direction == Message.Direction.INBOUND
    assert Message.objects.get(pk=result.replies[0].pk).direction == Message.Direction.OUTBOUND


def test_keywords_are_stored_apart_from_the_customer_care_queue(topic):
    subscribe(topic)
    receive("STOP")
    receive("Where is my order?")
    receive("stop sending me the red one please")
    care = Message.objects.filter(direction=Message.Direction.INBOUND, kind=Message.Kind.INBOUND)
    assert sorted(care.values_list("body", flat=True)) == ["Where is my order?", "stop sending me the red one please"]
    assert list(Message.objects.filter(kind=Message.Kind.KEYWORD).values_list("body", flat=True)) == ["STOP"]


# --- delivery statuses that come before the provider's answer is recorded --------------------

SID = "SMearly000000000000000000000000001"


def handed_over_prompt(topic, phone=PHONE, channel="sms", status=Message.Status.SENDING):
    """The prompt as the sender leaves it while the provider's API call is out (or after it timed out)."""
    services.optin_request(phone=phone, topic=topic, channel=channel, source=Source.API, evidence={"ip": "192.0.2.1"})
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT, contact__phone=phone, channel=channel, topic=topic)
    Message.objects.filter(pk=prompt.pk).update(status=status)
    prompt.refresh_from_db()
    return prompt


def early(status, message, *, error_code="", recipient="", channel="sms", sid=SID):
    from consent.webhooks.parsers import StatusUpdate
    from consent.webhooks.references import Reference

    update = StatusUpdate(channel=channel, provider_message_id=sid, status=status, raw_status=status,
                          recipient=recipient, error_code=error_code, reference=Reference("message", message.pk))
    return inbound.provider_status_apply(update=update, provider="twilio")


def test_early_opt_out_keeps_consents_given_after_the_message_was_handed_over(topic, news):
    """Rule 10 through our reference: only consents that existed when the refused message left."""
    from datetime import datetime
    from datetime import timezone as dt_timezone

    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=dt_timezone.utc)):
        promo = subscribe(topic)
        prompt = handed_over_prompt(news)
    with time_machine.travel(datetime(2026, 3, 2, 10, 5, tzinfo=dt_timezone.utc)):
        later = services.optin_request(phone=PHONE, topic=services.topic_create(
            slug="later", name="Later", keywords=["LATER"], consent_text="c", confirmation_message="reply YES",
            help_message="h", consent_ttl_days=None), channel="sms", source=Source.API, evidence={"ip": "192.0.2.1"})
    with time_machine.travel(datetime(2026, 3, 2, 10, 6, tzinfo=dt_timezone.utc)):
        summary = early("failed", prompt, error_code="21610")
    assert summary["revoked"] == 2 and summary["message_updated"]
    statuses = {c.topic.slug: c.status for c in Consent.objects.filter(contact=prompt.contact)}
    assert statuses == {"promo": ConsentStatus.REVOKED, "news": ConsentStatus.REVOKED, "later": ConsentStatus.PENDING}
    assert later.consent.pk in Consent.objects.filter(status=ConsentStatus.PENDING).values_list("pk", flat=True)
    assert promo.contact.events.filter(kind=EventKind.REVOKED, source=Source.PROVIDER,
                                       evidence__message_id=prompt.pk).count() == 2


def test_a_message_whose_outcome_was_lost_learns_it_from_a_callback_with_our_reference(topic):
    prompt = handed_over_prompt(topic, status=Message.Status.UNKNOWN)  # the API call timed out
    assert early("delivered", prompt)["message_updated"]
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id) == (Message.Status.DELIVERED, SID)


def test_an_early_queued_callback_records_the_provider_id_only(topic):
    prompt = handed_over_prompt(topic)
    assert not early("queued", prompt)["message_updated"]
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id) == (Message.Status.SENDING, SID)
    # The answer then records `sent` with the same id, and later callbacks find it by that id.

    lifecycle.record_sent(Message, [(prompt.pk, SID)], timezone.now())
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id) == (Message.Status.SENT, SID)


@pytest.mark.parametrize("outcome", ["unknown", "failed", "transient"])
def test_the_senders_failure_or_unknown_outcome_does_not_undo_an_early_callback(topic, outcome):
    """A read timeout (or any error) after the provider took the message and called back."""

    prompt = handed_over_prompt(topic)
    early("delivered", prompt)
    if outcome == "unknown":
        lifecycle.record_outcome(Message, prompt.pk, lifecycle.outcome_fields(
            lifecycle.Outcome("unknown", code="timeout", message="read timeout"), timezone.now(), retry=False))
    elif outcome == "failed":
        lifecycle.record_outcome(Message, prompt.pk, lifecycle.outcome_fields(
            lifecycle.Outcome("failed", code="21612", message="twilio 21612"), timezone.now(), retry=False))
    else:
        lifecycle.awaiting_outcome(Message, prompt.pk).update(status=Message.Status.QUEUED, error_code="20500")
    prompt.refresh_from_db()
    assert (prompt.status, prompt.error_code, prompt.provider_message_id) == (Message.Status.DELIVERED, "", SID)


def test_the_senders_answer_never_replaces_a_provider_id_recorded_by_a_callback(topic, monkeypatch):

    warnings = []  # the suite also runs with pytest's logging plugin off, so no caplog
    monkeypatch.setattr(lifecycle_sql.logger, "warning", lambda text, *args: warnings.append(text % args))
    prompt = handed_over_prompt(topic)
    early("delivered", prompt, sid="SMfromthecallback")
    lifecycle.record_sent(Message, [(prompt.pk, "SMfromtheanswer")], timezone.now())
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id) == (Message.Status.DELIVERED, "SMfromthecallback")
    assert any("SMfromtheanswer" in warning for warning in warnings)


def test_whatsapp_reference_on_another_channel_changes_nothing(topic):
    prompt = handed_over_prompt(topic, channel="whatsapp")
    summary = early("delivered", prompt, channel="sms")
    assert not summary["message_updated"]
    prompt.refresh_from_db()
    assert (prompt.status, prompt.provider_message_id) == (Message.Status.SENDING, None)
