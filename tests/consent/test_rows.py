"""consent.rows writes and reads rows exactly as the ORM does, on SQLite and on PostgreSQL."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from consent import rows, services
from consent.models import Consent, ConsentStatus, Contact, Message, Source, Topic, TopicText
from consent.selectors import contact_by_pseudonym

pytestmark = pytest.mark.django_db


def _contact(phone="+14155550123", **extra):
    return services.contact_get_or_create(phone=phone, **extra)


def _orm_values(instance):
    fresh = type(instance).objects.get(pk=instance.pk)
    return {f.attname: getattr(fresh, f.attname) for f in type(instance)._meta.concrete_fields}


def test_insert_stores_what_the_orm_reads_back_including_json_and_auto_fields():
    contact = _contact()
    template = {"name": "promo", "language": {"code": "fr"}, "components": [{"type": "body", "n": 1.5, "ok": None}]}
    before = timezone.now()
    message = rows.insert(Message(contact=contact, channel="whatsapp", direction=Message.Direction.OUTBOUND,
                                  kind=Message.Kind.REPLY, body="Bonjour é ✓", template=template,
                                  status=Message.Status.QUEUED))
    assert message.pk and not message._state.adding
    stored = _orm_values(message)
    assert stored["template"] == template
    assert stored["body"] == "Bonjour é ✓"
    assert stored["created_at"] >= before and stored["created_at"] == message.created_at  # auto_now_add filled in
    assert {name: getattr(message, name) for name in stored} == stored


def test_insert_refuses_a_duplicate_like_the_orm():
    from django.db import IntegrityError

    contact = _contact()
    fields = dict(contact=contact, channel="sms", direction=Message.Direction.INBOUND, kind=Message.Kind.INBOUND,
                  body="x", status=Message.Status.RECEIVED, provider_message_id="SM1")
    rows.insert(Message(**fields))
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.insert(Message(**fields))


def test_update_writes_named_fields_only_and_one_instant_for_auto_now(topic):
    consents = []
    for phone in ("+14155550123", "+14155550124", "+14155550125"):
        consents.append(services.optin_request(phone=phone, topic=topic, channel="sms", source=Source.API).consent)
    now = timezone.now()
    for consent in consents:
        consent.status = ConsentStatus.REVOKED
        consent.revoked_at = now
        consent.source = "admin"
        consent.channel = "whatsapp"  # changed in memory, not named: must not be written
    rows.update(consents, ["status", "revoked_at", "source", "updated_at"])
    stored = list(Consent.objects.filter(pk__in=[c.pk for c in consents]).order_by("pk"))
    assert {(c.status, c.revoked_at, c.source, c.channel) for c in stored} == {("revoked", now, "admin", "sms")}
    assert len({c.updated_at for c in stored}) == 1 and stored[0].updated_at == consents[0].updated_at


def test_fetch_builds_instances_with_the_orm_conversions(topic):
    contact = _contact(attributes={"first_name": "Zoé", "vip": True})
    services.optin_request(phone=contact.phone, topic=topic, channel="sms", source=Source.API)
    found = rows.fetch(
        f"SELECT {rows.columns(Consent, 'c')}, {rows.columns(Topic, 't')}, {rows.columns(TopicText, 'x')}, 42 "
        "FROM consent_consent c JOIN consent_topic t ON t.id = c.topic_id JOIN consent_topictext x ON x.id = c.text_id "
        "WHERE c.contact_id = %s",
        [contact.pk], (Consent, Topic, TopicText),
    )
    ((consent, read_topic, text, extra),) = found
    assert extra == 42
    for instance in (consent, read_topic, text):
        assert not instance._state.adding
        assert {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields} == _orm_values(instance)
    assert read_topic.keywords == topic.keywords  # JSON list
    assert consent.confirm_by > timezone.now() + timedelta(hours=1)  # aware datetime


def test_contact_by_pseudonym_reads_the_suppression_flag_with_the_row():
    contact = _contact(attributes={"plan": {"tier": 2}})
    found = contact_by_pseudonym(contact.phone_pseudonym)
    assert found.pk == contact.pk and found.attributes == {"plan": {"tier": 2}} and found.suppressed_when_read is False
    services.contact_suppress(contact=contact, reason="test", source=Source.ADMIN)
    assert contact_by_pseudonym(contact.phone_pseudonym).suppressed_when_read is True
    assert contact_by_pseudonym("0" * 64) is None
    assert Contact.objects.count() == 1
