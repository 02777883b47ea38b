"""The database refusing every connection for 30 s while people text STOP and a broadcast runs.

Real gunicorn, worker and beat processes on PostgreSQL + Redis; the provider is the loopback
stand-in. The database is made unreachable the way an outage does it: ALLOW_CONNECTIONS false and
every backend terminated (the test keeps its own connection to watch). Every signed STOP, and
Twilio's redelivery of it, is answered 200 (kept in the inbound fallback in Redis); the API answers
503 with Retry-After and /readyz/ says not ready, showing the fallback's depth. Once the database
is back, every STOP is applied exactly once (one revocation, one inbound message, one
confirmation), and the broadcast, which ran across the outage, hands nobody a message claimed after
their STOP arrived. The server's log of all this carries no full number and no token.
"""

import time
from collections import Counter

import pytest
import requests
from django.utils import timezone

from broadcasts import services
from broadcasts.models import OPEN_STATUSES, Broadcast, BroadcastStatus, Delivery, DeliveryStatus
from consent.models import Consent, ConsentEvent, ConsentStatus, EventKind, Message

from .conftest import celery_sends_to, database_refused, on_postgres_and_redis, post_twilio, stop_form, wait_until  # noqa: F401

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("not on_postgres_and_redis()", reason="needs PostgreSQL and a Redis broker"),
]

OUTAGE_SECONDS = 30
CONTACTS = 60
STOPPERS = 8
BODY = "Spring sale: 20% off. STOP to opt out."


def test_database_refused_for_30_s_while_stops_arrive_and_a_broadcast_runs(
        topic, consented, use_stand_in, settings, processes, make_user):
    contacts = consented(CONTACTS, topic)
    api_token = make_user("auditor")[1]
    token = settings.TWILIO_AUTH_TOKEN
    # The drain comes late (beat every 8 s, no webhook arriving after the outage to ask for it), so that the
    # broadcast resumes while the STOPs are still in Redis, not yet in the intake table: the claim's hold on
    # a non-empty fallback is then all that stands between them and a message (the test fails without it).
    processes.env.update(BROADCAST_SMS_RATE_PER_SECOND="4", BROADCAST_STALL_SECONDS="3", BROADCAST_TICK_SECONDS="1",
                         INBOUND_FALLBACK_HOLD_SECONDS="2", INBOUND_FALLBACK_DRAIN_SECONDS="8")
    session = requests.Session()
    with celery_sends_to(settings.CELERY_BROKER_URL, processes.queue):
        web = processes.web()
        processes.worker()
        processes.beat("outage")
        broadcast = services.broadcast_create(name="outage", topic=topic, channel="sms", body=BODY,
                                              respect_quiet_hours=False)
        services.broadcast_schedule(broadcast=broadcast)
        sent = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.SENT)
        wait_until(lambda: sent.count() >= 6, 60, "the broadcast to be under way", [processes.log])
        # The people who text STOP: among those the broadcast has not reached yet, spread over the audience.
        waiting = list(Delivery.objects.filter(broadcast=broadcast, status__in=OPEN_STATUSES)
                       .order_by("contact_id").values_list("contact_id", flat=True))
        assert len(waiting) >= 3 * STOPPERS, "the broadcast went too fast; slow its rate"
        stoppers = [next(c for c in contacts if c.pk == pk) for pk in waiting[2::len(waiting) // STOPPERS][:STOPPERS]]
        stop_posted_at = {}
        answers = []

        with database_refused():
            started = time.monotonic()
            for n, contact in enumerate(stoppers):
                form = stop_form(contact.phone, f"SM{n:032d}")
                for _ in range(2):  # the STOP, and Twilio's redelivery of it (Meta's retries, connection overrides)
                    stop_posted_at.setdefault(contact.pk, timezone.now())
                    before = time.monotonic()
                    response = post_twilio(session, web, token, form)
                    answers.append((response.status_code, time.monotonic() - before, response.text[:200]))
                time.sleep(1.5)
            api = session.get(web.url + "/api/v1/topics/", headers={"Authorization": f"Token {api_token}"}, timeout=20)
            ready = session.get(web.url + "/readyz/", timeout=20)
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
            during = sent.count()
            consents = Counter(Consent.objects.filter(contact__in=stoppers, channel="sms").values_list("status", flat=True))

        assert [status for status, _, _ in answers] == [200] * 2 * STOPPERS, answers
        assert max(elapsed for _, elapsed, _ in answers) < 15, "past Twilio's 15 s timeout"
        assert api.status_code == 503 and api.headers.get("Retry-After"), api.text[:200]
        assert ready.status_code == 503 and ready.json()["inbound"]["fallback"] == 2 * STOPPERS, ready.text
        assert consents == {ConsentStatus.ACTIVE: STOPPERS}, "a STOP was applied while the database was down?"

        def done():
            revoked = Consent.objects.filter(contact__in=stoppers, channel="sms", status=ConsentStatus.REVOKED).count()
            replies = Message.objects.filter(kind=Message.Kind.STOP_REPLY, status=Message.Status.SENT).count()
            finished = Broadcast.objects.get(pk=broadcast.pk).status == BroadcastStatus.COMPLETED
            return revoked == STOPPERS and replies == STOPPERS and finished

        wait_until(done, 120, "every STOP applied and the broadcast completed", [processes.log])

    assert session.get(web.url + "/readyz/", timeout=20).json()["inbound"]["fallback"] == 0
    for n, contact in enumerate(stoppers):
        assert ConsentEvent.objects.filter(contact=contact, kind=EventKind.REVOKED).count() == 1
        assert Message.objects.filter(direction=Message.Direction.INBOUND, provider_message_id=f"SM{n:032d}").count() == 1
    # Rule 7: no message to a person claimed after their STOP arrived (not even while it waited in Redis).
    rows = {row.contact_id: row for row in Delivery.objects.filter(broadcast=broadcast)}
    late = [(c.phone[-4:], rows[c.pk].status) for c in stoppers
            if rows[c.pk].claimed_at and rows[c.pk].claimed_at >= stop_posted_at[c.pk]]
    assert not late, late
    received = Counter(m["to"] for m in use_stand_in.messages() if m.get("body") == BODY)
    assert max(received.values()) == 1
    others = [c for c in contacts if c not in stoppers]
    assert all(received[c.phone] == 1 for c in others), "someone without a STOP missed the broadcast"
    assert during < CONTACTS, "nothing was left to send after the outage"
    logged = processes.log.read_text()
    assert "keeping it in the inbound fallback" in logged
    assert not any(c.phone[1:] in logged for c in stoppers) and token not in logged and api_token not in logged
