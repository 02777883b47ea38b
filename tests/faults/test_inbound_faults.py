"""Inbound under faults (rule 15), with real gunicorn, worker and beat processes on PostgreSQL + Redis.

- A burst of 2,000 signed webhooks in 2 s: every one answered 200 within Twilio's 15 s timeout, and
  every one applied, once.
- A worker SIGKILLed while it applies a batch of webhooks: nothing lost, nothing applied twice.
- Redis (broker, cache and the inbound fallback; its own server, AOF on) restarted while webhooks wait
  in the fallback during a database outage, and again mid-burst: the same.
"""

import threading
import time
from collections import Counter

import pytest
import requests

from consent.intake import fallback
from consent.models import Consent, ConsentEvent, ConsentStatus, EventKind, Message
from tests.broadcasts.conftest import phone_for
from tests.plugins.fallback_redis import keep_twilio_inbound

from .conftest import (  # noqa: F401 — the skipif condition names on_postgres_and_redis
    burst,
    celery_sends_to,
    database_refused,
    on_postgres_and_redis,
    post_twilio,
    stop_form,
    wait_until,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("not on_postgres_and_redis()", reason="needs PostgreSQL and a Redis broker"),
]

TWILIO_TIMEOUT = 15


def forms_for(stoppers, others, prefix):
    """A STOP from each of `stoppers` (contacts) and a care message from each number of `others`, interleaved."""
    stops = [stop_form(c.phone, f"SM{prefix}{n:030d}") for n, c in enumerate(stoppers)]
    texts = [stop_form(phone, f"SM{prefix}{len(stops) + n:030d}", body="Thanks, when does the sale end?")
             for n, phone in enumerate(others)]
    ratio = max(1, len(texts) // max(1, len(stops)))
    forms = []
    while stops or texts:
        if stops:
            forms.append(stops.pop(0))
        forms.extend(texts[:ratio])
        del texts[:ratio]
    return forms


def inbound_ids(prefix):
    return list(Message.objects.filter(direction=Message.Direction.INBOUND, provider_message_id__startswith=f"SM{prefix}")
                .values_list("provider_message_id", flat=True))


def assert_applied_once(stoppers, forms, prefix, stand_in):
    ids = inbound_ids(prefix)
    assert len(ids) == len(set(ids)) == len(forms), (len(ids), len(set(ids)), len(forms))
    revocations = Counter(ConsentEvent.objects.filter(contact__in=stoppers, kind=EventKind.REVOKED)
                          .values_list("contact_id", flat=True))
    assert revocations == Counter({c.pk: 1 for c in stoppers})
    replies = Counter(Message.objects.filter(kind=Message.Kind.STOP_REPLY, contact__in=stoppers)
                      .values_list("contact_id", flat=True))
    assert replies == Counter({c.pk: 1 for c in stoppers}), "a STOP confirmation missing or queued twice"
    handed = Counter(m["to"] for m in stand_in.messages() if "unsubscribed" in m.get("body", ""))
    assert not handed or max(handed.values()) == 1, "a STOP confirmation sent twice"


# The webhook still applies each message inside its request (about 100 a second here under this load):
# the last answers of the burst come after ~20 s. The intake (record, 200, apply after) makes it pass.
def test_a_burst_of_2000_webhooks_in_2_s(topic, consented, use_stand_in, settings, processes):
    stoppers = consented(200, topic)
    forms = forms_for(stoppers, [phone_for(i) for i in range(1000, 2800)], prefix="B")
    assert len(forms) == 2000
    with celery_sends_to(settings.CELERY_BROKER_URL, processes.queue):
        web = processes.web(workers=4, threads=2)
        processes.worker()
        processes.beat("burst")
        started = time.monotonic()
        results = burst(web, settings.TWILIO_AUTH_TOKEN, forms, seconds=2.0)
        answered_in = time.monotonic() - started
        statuses = Counter(status for status, _ in results)
        slowest = max(latency for _, latency in results)
        wait_until(lambda: len(inbound_ids("B")) == len(forms), 240, "every webhook of the burst applied", [processes.log])
        wait_until(lambda: Consent.objects.filter(contact__in=stoppers, status=ConsentStatus.REVOKED).count() == 200, 60,
                   "every STOP of the burst applied", [processes.log])
    print(f"burst: 2000 webhooks answered in {answered_in:.1f} s, slowest {slowest:.2f} s after its instant")
    assert statuses == Counter({200: 2000}), statuses
    assert slowest < TWILIO_TIMEOUT, f"the slowest answer took {slowest:.1f} s"
    assert_applied_once(stoppers, forms, "B", use_stand_in)


def test_a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice(topic, consented, use_stand_in, settings,
                                                                          processes):
    stoppers = consented(150, topic)
    forms = forms_for(stoppers, [phone_for(i) for i in range(1000, 1250)], prefix="K")
    # As the web process keeps them during an outage: every one waits in the fallback, then workers drain it.
    settings.INBOUND_FALLBACK_KEY = processes.env["INBOUND_FALLBACK_KEY"]
    for form in forms:
        keep_twilio_inbound(form)
    processes.env.update(MESSAGE_REQUEUE_AFTER_SECONDS="5")
    with celery_sends_to(settings.CELERY_BROKER_URL, processes.queue):
        worker = processes.worker()  # drains at start
        wait_until(lambda: len(inbound_ids("K")) >= 40, 90, "the worker to be applying", [processes.log])
        worker.kill()  # SIGKILL, pool children included, mid-batch
        at_kill = len(inbound_ids("K"))
        processes.worker()
        processes.beat("killed")
        wait_until(lambda: len(inbound_ids("K")) == len(forms), 120, "every webhook applied after the restart",
                   [processes.log])
        wait_until(lambda: fallback.fallback_depth() == 0, 30, "the fallback emptied", [processes.log])
    assert at_kill < len(forms), "the drain finished before the kill; make the batch larger"
    assert_applied_once(stoppers, forms, "K", use_stand_in)
    assert fallback.inbound_backlog() == {"fallback": 0, "fallback_set_aside": 0}


@pytest.mark.parametrize("private_redis", ["aof"], indirect=True)
def test_redis_restarted_with_webhooks_in_the_fallback_and_mid_burst(topic, consented, use_stand_in, settings,
                                                                     processes, private_redis):
    stoppers = consented(60, topic)
    kept = stoppers[:20]
    token = settings.TWILIO_AUTH_TOKEN
    processes.env.update(CELERY_BROKER_URL=f"{private_redis.url}/0", REDIS_URL=f"{private_redis.url}/1")
    settings.REDIS_URL = f"{private_redis.url}/1"
    settings.INBOUND_FALLBACK_KEY = processes.env["INBOUND_FALLBACK_KEY"]
    session = requests.Session()
    with celery_sends_to(f"{private_redis.url}/0", processes.queue):
        web = processes.web(workers=2, threads=4)
        supervised = {"worker": processes.worker(), "restarts": 0}
        processes.beat("redis")
        kept_forms = forms_for(kept, [], prefix="R")
        with database_refused():
            answers = [post_twilio(session, web, token, form).status_code for form in kept_forms]
            assert fallback.fallback_depth() == len(kept_forms)
            private_redis.stop()  # SIGTERM: Redis writes its append-only file and exits
            private_redis.start()
            assert fallback.fallback_depth() == len(kept_forms), "the fallback did not survive the restart"
        assert answers == [200] * len(kept_forms)

        burst_forms = forms_for(stoppers[20:], [phone_for(i) for i in range(1000, 1360)], prefix="S")
        restarter_done = []

        def restart_mid_burst():
            time.sleep(1.0)
            private_redis.stop()
            time.sleep(2.0)
            private_redis.start()
            restarter_done.append(True)

        restarter = threading.Thread(target=restart_mid_burst)
        restarter.start()
        results = burst(web, token, burst_forms, seconds=4.0, threads=16)
        restarter.join()
        statuses = Counter(status for status, _ in results)
        assert statuses == Counter({200: len(burst_forms)}), statuses  # every webhook recorded somewhere

        def all_applied():
            # The process supervisor, as in test_broker_and_beat: kombu 5.7's worker may exit on a lost connection.
            if supervised["worker"].process.poll() is not None:
                supervised["worker"] = processes.worker()
                supervised["restarts"] += 1
            return len(inbound_ids("R")) == len(kept_forms) and len(inbound_ids("S")) == len(burst_forms)

        wait_until(all_applied, 120, "every webhook applied after the Redis restarts", [processes.log])
        wait_until(lambda: Consent.objects.filter(contact__in=stoppers, status=ConsentStatus.REVOKED).count() == 60, 60,
                   "every STOP applied", [processes.log])
    assert restarter_done
    assert max(latency for _, latency in results) < TWILIO_TIMEOUT
    assert_applied_once(kept, kept_forms, "R", use_stand_in)
    assert_applied_once(stoppers[20:], burst_forms, "S", use_stand_in)
