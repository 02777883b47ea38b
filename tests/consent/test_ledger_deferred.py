"""Appends chained in at the end of a block (`ledger.appends_at_end`, PostgreSQL): one valid chain with
immediate appends around them, the consents' pointers to their events intact, nothing on an error."""

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from consent import ledger, services
from consent.models import ChainHead, Consent, ConsentEvent, EventKind, Source
from consent.verification import verify_chain, verify_state
from tests.prompts import deliver_prompts

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif("not __import__('django.db').db.connection.vendor == 'postgresql'", reason="deferred appends: PostgreSQL"),
]


def _pending(topic, phone):
    consent = services.optin_request(phone=phone, topic=topic, channel="sms", source=Source.API).consent
    deliver_prompts()
    return consent


@pytest.mark.django_db
def test_events_get_their_place_in_the_chain_as_the_block_ends(topic):
    consents = [_pending(topic, f"+1415555{i:04d}") for i in range(3)]
    head_before = ChainHead.objects.get(pk=1).seq
    with transaction.atomic(), ledger.appends_at_end():
        for consent in consents[1:]:
            services.consent_revoke(contact=consent.contact, channel="sms", source=Source.SMS_KEYWORD)
        assert ChainHead.objects.get(pk=1).seq == head_before  # the head untouched (and unlocked) so far
        confirmed = services.optin_confirm_by_reply(contact=consents[0].contact, channel="sms", source=Source.SMS_KEYWORD)
        assert confirmed[0].current_event.pk is not None and confirmed[0].current_event.seq is None  # its key now
    assert ChainHead.objects.get(pk=1).seq == head_before + 3
    kinds = list(ConsentEvent.objects.filter(seq__gt=head_before).values_list("kind", flat=True))
    assert kinds == [EventKind.REVOKED, EventKind.REVOKED, EventKind.CONFIRMED]
    consent = Consent.objects.get(pk=confirmed[0].pk)
    assert consent.current_event.kind == EventKind.CONFIRMED  # the pointer set before the event was inserted
    assert Consent.objects.filter(pk=consent.pk).current(timezone.now()).exists()
    assert verify_chain().ok
    assert verify_state().ok


@pytest.mark.django_db
def test_an_error_in_the_block_appends_nothing(topic):
    consent = _pending(topic, "+14155550100")
    head = ChainHead.objects.values_list("seq", "hash").get(pk=1)
    with pytest.raises(RuntimeError), transaction.atomic(), ledger.appends_at_end():
        ledger.event_append(kind=EventKind.SUPPRESSED, contact=consent.contact, source=Source.API, actor="test")
        raise RuntimeError("a row failed")
    assert ChainHead.objects.values_list("seq", "hash").get(pk=1) == head
    assert verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_a_block_holds_no_head_lock_until_its_end_and_immediate_appends_go_meanwhile(topic):
    consent = _pending(topic, "+14155550101")
    other = _pending(topic, "+14155550102")
    inside, release, errors = threading.Event(), threading.Event(), []

    def block():
        try:
            with transaction.atomic(), ledger.appends_at_end():
                ledger.event_append(kind=EventKind.SUPPRESSED, contact=consent.contact, source=Source.API, actor="a")
                inside.set()
                release.wait(timeout=10)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=block)
    thread.start()
    assert inside.wait(timeout=10)
    # An immediate append (its own transaction) is not held up by the open block.
    done = threading.Event()

    def immediate():
        try:
            services.consent_revoke(contact=other.contact, channel="sms", source=Source.SMS_KEYWORD)
            done.set()
        finally:
            connection.close()

    writer = threading.Thread(target=immediate)
    writer.start()
    assert done.wait(timeout=5)
    release.set()
    thread.join(10), writer.join(10)
    assert errors == []
    kinds = list(ConsentEvent.objects.order_by("-seq").values_list("kind", flat=True)[:2])
    assert kinds == [EventKind.SUPPRESSED, EventKind.REVOKED]  # the block's event chained in after it
    assert verify_chain().ok
