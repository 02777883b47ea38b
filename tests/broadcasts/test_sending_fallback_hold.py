"""The claim holds promotional sends while webhooks wait in the inbound fallback (rules 7 and 15): a STOP
kept there during a database outage stops every message to that number not yet handed over."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from broadcasts.models import OPEN_STATUSES, BroadcastStatus, Delivery, DeliveryStatus, SkipReason
from broadcasts.policies import RULES
from broadcasts.sending import INBOUND_FALLBACK_RULE, broadcast_test_send
from consent.models import Consent, ConsentStatus
from consent.tasks import inbound_fallback_drain_task
from tests.plugins.fallback_redis import closed_port_url, keep_twilio_inbound

from .test_sending import fake_provider, make, run, tick  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def keep_stop(phone, sid):
    """What the webhook does with a STOP while the database cannot be reached."""
    keep_twilio_inbound({"MessageSid": sid, "From": phone, "To": "+15005550006", "Body": "STOP", "NumMedia": "0"})


def test_a_stop_kept_in_the_fallback_mid_broadcast_reaches_nobody_and_the_rest_follow(
        topic, consented, fake_provider, run_on_commit, fallback_redis, settings):  # noqa: F811
    contacts = consented(12, topic)
    stopper = contacts[9]

    def stop_lands(message, n):
        if n == 2:  # while the 3rd message goes out, contact 9's STOP is kept in Redis
            keep_stop(stopper.phone, "SM" + "9" * 32)

    fake_provider.on_send = stop_lands
    broadcast = run(make(topic), run_on_commit)
    assert len(fake_provider.sent) == 4  # the claim in flight (4 rows) went; every later claim waits
    held = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.DEFERRED)
    # The claim that saw the hold deferred its rows and the task stopped there (deferring the rest row by
    # row, at the send rate, would keep the worker from the drain): the rest of the range is still open.
    assert held.exists() and {d.rule for d in held} == {INBOUND_FALLBACK_RULE}
    assert Delivery.objects.filter(broadcast=broadcast, status__in=OPEN_STATUSES).count() == 8
    assert INBOUND_FALLBACK_RULE in RULES  # its source, like every rule a delivery names
    assert broadcast.status == BroadcastStatus.SENDING

    with run_on_commit():
        assert inbound_fallback_drain_task() == 1
    assert Consent.objects.get(contact=stopper, channel="sms").status == ConsentStatus.REVOKED
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.INBOUND_FALLBACK_HOLD_SECONDS + 1)):
        tick(run_on_commit)
    sent_to = [m.to for m in fake_provider.sent]
    assert len(sent_to) == len(set(sent_to)) == 11
    assert stopper.phone not in sent_to
    skipped = Delivery.objects.get(broadcast=broadcast, contact=stopper)
    assert (skipped.status, skipped.skip_reason) == (DeliveryStatus.SKIPPED, SkipReason.NOT_CURRENT)
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.COMPLETED


def test_an_unreadable_fallback_holds_sends(topic, consented, fake_provider, run_on_commit, settings):  # noqa: F811
    consented(3, topic)
    settings.REDIS_URL = closed_port_url()
    broadcast = run(make(topic), run_on_commit)
    assert not fake_provider.sent
    assert set(Delivery.objects.filter(broadcast=broadcast).values_list("status", "rule")) == {
        (DeliveryStatus.DEFERRED, INBOUND_FALLBACK_RULE)}


def test_no_fallback_no_hold(topic, consented, fake_provider, run_on_commit, settings):  # noqa: F811
    consented(3, topic)
    settings.REDIS_URL = None
    broadcast = run(make(topic), run_on_commit)
    assert len(fake_provider.sent) == 3 and broadcast.status == BroadcastStatus.COMPLETED


def test_a_test_send_waits_too(topic, consented, fake_provider, fallback_redis):  # noqa: F811
    contact, = consented(1, topic)
    keep_stop(contact.phone, "SM" + "8" * 32)
    with pytest.raises(Exception, match="still being applied"):
        broadcast_test_send(broadcast=make(topic), phone=contact.phone)
    assert not fake_provider.sent
