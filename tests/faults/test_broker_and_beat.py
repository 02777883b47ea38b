"""Faults around the broker and the beat, with real worker and beat processes (PostgreSQL + Redis).

- Redis (broker and cache) restarted mid-broadcast, losing every queued and unacknowledged
  task: once it is back, the beat's upkeep finds the stalled broadcast and finishes it; every
  recipient gets exactly one message ("unknown" only for what was in flight).
- Two beat processes at once: every broadcast is launched once and every recipient served once.

(A worker SIGKILLed mid-broadcast is tests/broadcasts/test_worker.py, not repeated here.)
"""

import re
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from broadcasts import services
from broadcasts.models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus

from .conftest import celery_sends_to, on_postgres_and_redis, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("not on_postgres_and_redis()", reason="needs PostgreSQL and a Redis broker"),
]


def test_redis_restarted_mid_broadcast(topic, consented, use_stand_in, settings, private_redis, processes):
    contacts = consented(200, topic)
    use_stand_in.configure(latency_ms=30)
    settings.BROADCAST_STALL_SECONDS = 2
    settings.BROADCAST_UNKNOWN_AFTER_SECONDS = 10
    processes.env.update(CELERY_BROKER_URL=f"{private_redis.url}/0", REDIS_URL=f"{private_redis.url}/1")
    with celery_sends_to(f"{private_redis.url}/0", processes.queue):
        processes.worker()
        broadcast = services.broadcast_create(name="redis", topic=topic, channel="sms", body="Sale", respect_quiet_hours=False)
        services.broadcast_schedule(broadcast=broadcast)
        sent = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.SENT)
        wait_until(lambda: sent.count() >= 40, 60, "the broadcast to be well under way", [processes.log])
        private_redis.stop()  # every queued and unacknowledged task is gone with it
        at_restart = sent.count()
        time.sleep(2)
        private_redis.start()

        def finished():
            try:
                services.broadcasts_tick()  # the beat, through the restarted broker
            except Exception:  # the producer may need a moment to reconnect
                return False
            return Broadcast.objects.get(pk=broadcast.pk).status == BroadcastStatus.COMPLETED

        wait_until(finished, 90, "the broadcast to finish after Redis came back", [processes.log])
    assert at_restart < 200, "the broadcast finished before Redis went down; slow the stand-in"
    received = Counter(m["to"] for m in use_stand_in.messages())
    assert max(received.values()) == 1, "a recipient got two messages"
    rows = list(Delivery.objects.filter(broadcast=broadcast).select_related("contact"))
    assert len(rows) == len(contacts) == 200
    statuses = Counter(row.status for row in rows)
    assert statuses[DeliveryStatus.SENT] + statuses[DeliveryStatus.UNKNOWN] == 200, statuses
    assert statuses[DeliveryStatus.UNKNOWN] <= 8  # at most what was in flight (2 processes × claim of 4)
    assert all(received[row.contact.phone] == 1 for row in rows if row.status == DeliveryStatus.SENT)


def test_two_beats_launch_each_broadcast_once(topic, consented, use_stand_in, settings, processes):
    contacts = consented(30, topic)
    processes.env.update(BROADCAST_TICK_SECONDS="0.5")
    broadcasts = []
    with celery_sends_to(settings.CELERY_BROKER_URL, processes.queue):
        for n in range(5):
            broadcast = services.broadcast_create(name=f"beat-{n}", topic=topic, channel="sms", body=f"Sale {n}",
                                                  respect_quiet_hours=False)
            # Due a moment after both beats are up, so that both tick while it is due.
            services.broadcast_schedule(broadcast=broadcast, send_at=timezone.now() + timedelta(seconds=4))
            broadcasts.append(broadcast)
        processes.worker()
        processes.beat("a")
        processes.beat("b")
        wait_until(lambda: Broadcast.objects.filter(pk__in=[b.pk for b in broadcasts],
                                                    status=BroadcastStatus.COMPLETED).count() == 5,
                   90, "all five broadcasts to complete", [processes.log])
    log = processes.log.read_text()
    ticks_a_b = len(re.findall(r"Sending due task broadcasts-tick", log))
    assert ticks_a_b >= 4, "the two beats did not both tick"
    launches = Counter(re.findall(r"broadcast (\d+) launched", log))
    assert launches == Counter({str(b.pk): 1 for b in broadcasts}), launches
    received = Counter((m["to"], m["body"]) for m in use_stand_in.messages())
    assert len(received) == 5 * len(contacts) and max(received.values()) == 1
