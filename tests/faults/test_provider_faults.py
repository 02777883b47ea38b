"""Provider faults through real worker processes (PostgreSQL + Redis, loopback stand-in).

- 429 with Retry-After, 500s, a read timeout and a dropped connection for a while, then success:
  the worker retries with backoff (honouring Retry-After), every recipient is served exactly once,
  and only the two calls whose outcome is unknowable (timeout, reset) end `unknown`, never resent.
- The provider down for good: the broadcast pauses itself and its status says why; once the
  provider is back, a resume serves every recipient exactly once (the rows the outage failed
  included).
"""

from collections import Counter

import pytest

from broadcasts import services
from broadcasts.models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus

from .conftest import celery_sends_to, on_postgres_and_redis, wait_until  # noqa: F401 — the skipif condition names it

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("not on_postgres_and_redis()", reason="needs PostgreSQL and a Redis broker"),
]

FLAKY = [
    {"kind": "429", "count": 2, "retry_after": "1"},
    {"kind": "500", "count": 3},
    {"kind": "timeout", "count": 1, "delay_ms": 3000},
    {"kind": "reset", "count": 1},
    {"kind": "500", "count": 2},
]


def _run_broadcast(topic, settings, processes):
    broadcast = services.broadcast_create(name="faults", topic=topic, channel="sms", body="Sale", respect_quiet_hours=False)
    with celery_sends_to(settings.CELERY_BROKER_URL, processes.queue):
        processes.worker()
        services.broadcast_schedule(broadcast=broadcast)
        yield broadcast


def test_flaky_provider_then_success(topic, consented, use_stand_in, settings, processes):
    contacts = consented(40, topic)
    use_stand_in.configure(faults=FLAKY)
    processes.env.update(PROVIDER_READ_TIMEOUT="1", PROVIDER_CONNECT_TIMEOUT="1")
    for broadcast in _run_broadcast(topic, settings, processes):
        def completed(broadcast=broadcast):
            # The beat: wakes rows whose retry is due after their send task has finished.
            services.broadcasts_tick()
            return Broadcast.objects.get(pk=broadcast.pk).status == BroadcastStatus.COMPLETED

        wait_until(completed, 60, "the broadcast to complete despite the faults", [processes.log])
    stats = use_stand_in.stats()
    assert stats["faults"] == sum(f["count"] for f in FLAKY)
    received = Counter(m["to"] for m in use_stand_in.messages())
    assert max(received.values()) == 1
    rows = list(Delivery.objects.filter(broadcast=broadcast).select_related("contact"))
    statuses = Counter(row.status for row in rows)
    assert statuses == Counter({DeliveryStatus.SENT: 38, DeliveryStatus.UNKNOWN: 2}), statuses
    assert {row.contact.phone for row in rows if row.status == DeliveryStatus.SENT} == set(received)
    assert sum(row.attempts for row in rows) == 40 + 2 + 3 + 2  # each retryable failure cost one more attempt
    retried = [row for row in rows if row.attempts > 1]
    assert retried and all(row.status == DeliveryStatus.SENT for row in retried)
    assert len(contacts) == 40


def test_provider_down_for_good_pauses_the_broadcast_and_says_why(topic, consented, use_stand_in, settings, processes):
    consented(40, topic)
    use_stand_in.configure(faults=[{"kind": "500", "count": 100_000}])
    processes.env.update(BROADCAST_MAX_ATTEMPTS="2", BROADCAST_ERROR_RATE_MIN_SAMPLE="10")
    for broadcast in _run_broadcast(topic, settings, processes):
        def paused(broadcast=broadcast):
            services.broadcasts_tick()  # the beat
            return Broadcast.objects.get(pk=broadcast.pk).status == BroadcastStatus.PAUSED

        wait_until(paused, 60, "the broadcast to pause itself", [processes.log])
    broadcast.refresh_from_db()
    assert "error rate" in broadcast.status_reason
    assert "provider error 20500" in broadcast.status_reason  # says why: the provider's own error
    assert not use_stand_in.messages()
    rows = Counter(Delivery.objects.filter(broadcast=broadcast).values_list("status", flat=True))
    assert rows[DeliveryStatus.SENT] == 0 and rows[DeliveryStatus.UNKNOWN] == 0
    assert rows[DeliveryStatus.FAILED] + rows[DeliveryStatus.QUEUED] + rows[DeliveryStatus.SENDING] == 40
    failed = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.FAILED).first()
    assert failed.error_code in {"20500", "500"}  # the provider's own code is kept on each row

    # The provider comes back and someone presses resume: everyone is served, once.
    use_stand_in.configure(faults=[])
    with celery_sends_to(settings.CELERY_BROKER_URL, processes.queue):
        services.broadcast_resume(broadcast=broadcast)

        def completed():
            services.broadcasts_tick()
            return Broadcast.objects.get(pk=broadcast.pk).status == BroadcastStatus.COMPLETED

        wait_until(completed, 60, "the resumed broadcast to complete", [processes.log])
    received = Counter(m["to"] for m in use_stand_in.messages())
    assert len(received) == 40 and max(received.values()) == 1
    assert Counter(Delivery.objects.filter(broadcast=broadcast).values_list("status", flat=True)) == {
        DeliveryStatus.SENT: 40}
