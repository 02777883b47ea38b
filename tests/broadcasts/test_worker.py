"""Broadcasts through real Celery worker processes: end to end, and a worker killed mid-broadcast."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from django.db import connection

from broadcasts import services
from broadcasts.models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus
from consent.models import Contact
from tests.plugins.worker import ROOT, _database_url

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fast_worker_env(monkeypatch):
    """Settings the worker subprocess reads from its environment: no throttle, small batches."""
    monkeypatch.setenv("BROADCAST_SMS_RATE_PER_SECOND", "0")
    monkeypatch.setenv("BROADCAST_WHATSAPP_RATE_PER_SECOND", "0")
    monkeypatch.setenv("BROADCAST_BATCH_SIZE", "10")
    monkeypatch.setenv("BROADCAST_CLAIM_SIZE", "4")
    monkeypatch.setenv("BROADCAST_SEND_CONCURRENCY", "4")


def test_small_broadcast_end_to_end_on_a_real_worker(topic, consented, fast_worker_env, use_stand_in,
                                                     celery_worker_process):
    contacts = consented(30, topic, attributes={"first_name": "Ada"})
    broadcast = services.broadcast_create(name="e2e", topic=topic, channel="sms", body="Hi {{ first_name }}",
                                          respect_quiet_hours=False)
    services.broadcast_schedule(broadcast=broadcast)  # its launch task goes to the worker on commit
    celery_worker_process(
        lambda: Broadcast.objects.get(pk=broadcast.pk).status == BroadcastStatus.COMPLETED,
        timeout=60, what="the broadcast to complete",
    )
    assert Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.SENT).count() == 30
    received = Counter(m["to"] for m in use_stand_in.messages())
    assert received == Counter(c.phone for c in contacts)
    assert {m["body"] for m in use_stand_in.messages()} == {"Hi Ada"}


# --- a worker killed mid-broadcast (PostgreSQL + Redis) ------------------------------------


def _on_postgres_and_redis() -> bool:
    return connection.vendor == "postgresql" and os.environ.get("CELERY_BROKER_URL", "").startswith("redis")


class Worker:
    """`celery worker` in its own process group, so that SIGKILL takes the pool children with it."""

    def __init__(self, queue, env, log):
        self.queue, self.env, self.log = queue, env, log
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=2",
             "--pool=prefork", "-Q", self.queue, "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def wait_for(condition, timeout, what, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")


@pytest.mark.postgres
@pytest.mark.skipif("not _on_postgres_and_redis()", reason="needs PostgreSQL and a Redis broker")
def test_worker_killed_mid_broadcast_then_restarted(topic, consented, use_stand_in, settings, tmp_path):
    from config.celery import app

    contacts = consented(240, topic)
    use_stand_in.configure(latency_ms=40)  # slow enough to kill it half-way
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.worker_test", "CELERY_QUEUE": queue,
           "DATABASE_URL": _database_url(connection.settings_dict), "PYTHONPATH": str(ROOT),
           "CELERY_VISIBILITY_TIMEOUT": "3", "BROADCAST_SMS_RATE_PER_SECOND": "0", "BROADCAST_BATCH_SIZE": "20",
           "BROADCAST_CLAIM_SIZE": "4", "BROADCAST_SEND_CONCURRENCY": "4"}
    for name in ("SMS_PROVIDER", "TWILIO_API_BASE", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"):
        env[name] = str(getattr(settings, name))
    log = tmp_path / "worker.log"
    old = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager, app.conf.task_default_queue = False, queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.BROADCAST_STALL_SECONDS = 2
    settings.BROADCAST_UNKNOWN_AFTER_SECONDS = 6  # provider timeout in the stand-in fixture: 2 s
    first = Worker(queue, env, log).start()
    second = None
    try:
        broadcast = services.broadcast_create(name="kill", topic=topic, channel="sms", body="Sale", respect_quiet_hours=False)
        services.broadcast_schedule(broadcast=broadcast)
        sent = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.SENT)
        wait_for(lambda: sent.count() >= 60, 60, "a quarter of the broadcast", log)
        first.kill()
        in_flight = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.SENDING).count()
        assert sent.count() < 240, "the worker finished before it was killed; slow the stand-in down"
        second = Worker(queue, env, log).start()

        def finished():
            services.broadcasts_tick()  # the beat: recovers lost tasks, marks crashed sends unknown
            return Broadcast.objects.get(pk=broadcast.pk).status == BroadcastStatus.COMPLETED

        wait_for(finished, 90, "the restarted worker to finish the broadcast", log)
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = old
        first.stop()
        if second:
            second.stop()
    received = Counter(m["to"] for m in use_stand_in.messages())
    assert max(received.values()) == 1, "a message was sent twice"
    rows = {d.contact_id: d for d in Delivery.objects.filter(broadcast=broadcast).select_related("contact")}
    assert len(rows) == 240
    unknown = [d for d in rows.values() if d.status == DeliveryStatus.UNKNOWN]
    assert len(unknown) <= max(in_flight, 8)  # only what was in flight when the worker died
    served = [d for d in rows.values() if d.status == DeliveryStatus.SENT]
    assert len(served) + len(unknown) == 240
    assert all(received[d.contact.phone] == 1 for d in served)
    assert len(contacts) == 240


# --- jurisdiction policies on a real worker ------------------------------------------------


def test_policies_decide_each_recipient_on_a_real_worker(topic, fast_worker_env, use_stand_in, celery_worker_process):
    """Florida, New York, Maryland and France at one instant: each sent, deferred to its window or, past
    Florida's cap, skipped (the broadcast skips capped deliveries), every wait and skip naming its rule.
    What each should get is asked of the policies for the instant of the run."""
    from datetime import datetime, timedelta, timezone

    from broadcasts import policies, quiet_hours
    from tests.broadcasts.test_policies import FL, FR, MD, NY, consent_for

    for phone in (FL, NY, MD, FR):
        consent_for(phone, topic)
    for hours in (1, 2, 3):  # Florida's number has had three messages of the topic today
        earlier = services.broadcast_create(name=f"earlier {hours}", topic=topic, channel="sms", body="Sale. STOP to opt out.")
        Broadcast.objects.filter(pk=earlier.pk).update(status=BroadcastStatus.COMPLETED)
        Delivery.objects.create(broadcast=earlier, contact=Contact.objects.get(phone=FL), status=DeliveryStatus.SENT,
                                     created_at=datetime.now(timezone.utc),
                                     claimed_at=datetime.now(timezone.utc) - timedelta(hours=hours))
    broadcast = services.broadcast_create(name="policies", topic=topic, channel="sms", body="Sale today. STOP to opt out.",
                                          when_capped="skip")
    now = datetime.now(timezone.utc)
    services.broadcast_schedule(broadcast=broadcast)
    expected = {}
    for phone in (FL, NY, MD, FR):
        policy = policies.STATUTORY[policies.jurisdiction_for(phone)]
        zones = policies.zones_for(policy, quiet_hours.timezones_for_number(phone))
        if not quiet_hours.is_allowed(now, zones, policy.window):
            expected[phone] = (DeliveryStatus.DEFERRED, policy.window_rule)
        elif phone == FL:
            expected[phone] = (DeliveryStatus.SKIPPED, "us-fl-cap")
        else:
            expected[phone] = (DeliveryStatus.SENT, "")
    rows = Delivery.objects.filter(broadcast=broadcast)
    celery_worker_process(
        lambda: rows.count() == 4 and not rows.filter(status__in=(DeliveryStatus.QUEUED, DeliveryStatus.SENDING)).exists(),
        timeout=60, what="every delivery decided",
    )
    got = {d.contact.phone: (d.status, d.rule) for d in rows.select_related("contact")}
    assert got == expected, f"at {now.isoformat()}"
    sent = {m["to"] for m in use_stand_in.messages()}
    assert sent == {phone for phone, (status, _) in expected.items() if status == DeliveryStatus.SENT}
