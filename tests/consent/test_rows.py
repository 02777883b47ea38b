"""consent.rows reads rows exactly as the ORM does, on SQLite and on PostgreSQL."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from consent import rows, services
from consent.models import Consent, ConsentStatus, Contact, Source, Topic, TopicText
from consent.selectors import contact_by_pseudonym

pytestmark = pytest.mark.django_db


def _contact(phone="+14155550123", **extra):
    return services.contact_get_or_create(phone=phone, **extra)


def _orm_values(instance):
    fresh = type(instance).objects.get(pk=instance.pk)
    return {f.attname: getattr(fresh, f.attname) for f in type(instance)._meta.concrete_fields}


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
        assert {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields} == _orm_values(instance)
    assert read_topic.keywords == topic.keywords  # JSON list
    assert consent.confirm_by > timezone.now() + timedelta(hours=1)  # aware datetime
    consent.save()  # a row read back saves as an UPDATE of itself
    assert Consent.objects.filter(contact=contact).count() == 1


def test_consents_locked_filters_as_documented(topic):
    contact = _contact()
    pending = services.optin_request(phone=contact.phone, topic=topic, channel="sms", source=Source.API).consent
    with transaction.atomic():
        def ids(**kwargs):
            return [c.pk for c, _, _ in rows.consents_locked(contact_id=contact.pk, channel="sms", **kwargs)]

        assert ids(statuses=(ConsentStatus.PENDING,)) == [pending.pk]
        assert ids(statuses=(ConsentStatus.ACTIVE,)) == []
        assert ids(statuses=(ConsentStatus.PENDING,), topic_id=topic.pk + 1000) == []
        assert ids(statuses=(ConsentStatus.PENDING,), confirm_by_from=pending.confirm_by + timedelta(seconds=1)) == []
        assert ids(statuses=(ConsentStatus.PENDING,), prompted=True) == []  # the prompt was not handed over
        ((consent, read_topic, text),) = rows.consents_locked(contact_id=contact.pk, channel="sms",
                                                              statuses=(ConsentStatus.PENDING,))
    assert (read_topic.pk, text.pk) == (topic.pk, pending.text_id)


def test_contact_by_pseudonym_reads_the_suppression_flag_with_the_row():
    contact = _contact(attributes={"plan": {"tier": 2}})
    found = contact_by_pseudonym(contact.phone_pseudonym)
    assert found.pk == contact.pk and found.attributes == {"plan": {"tier": 2}} and found.suppressed_when_read is False
    services.contact_suppress(contact=contact, reason="test", source=Source.ADMIN)
    assert contact_by_pseudonym(contact.phone_pseudonym).suppressed_when_read is True
    assert contact_by_pseudonym("0" * 64) is None
    assert Contact.objects.count() == 1


def test_inserted_rows_come_back_saved_with_their_cached_relations(topic, django_assert_num_queries):
    from consent import rows, services
    from consent.models import Message

    contact = services.contact_get_or_create(phone="+14155550177")
    first, second = rows.insert_many([
        Message(contact=contact, channel="sms", direction="in", kind="inbound", body="hi", status="received"),
        Message(contact=contact, channel="sms", direction="out", kind="reply", body="hello", status="queued"),
    ])
    assert first.pk < second.pk
    with django_assert_num_queries(0):
        assert second.contact.phone == "+14155550177"  # carried over, not read again
    assert second.created_at is not None  # auto_now_add filled in as save() would
    second.body = "changed"
    second.save(update_fields=["body"])  # a saved row: an UPDATE, never a second INSERT
    assert Message.objects.filter(contact=contact).count() == 2
    assert Message.objects.get(pk=second.pk).body == "changed"
