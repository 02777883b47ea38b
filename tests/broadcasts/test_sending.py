"""The send path: consent gate at send time, never twice, provider feedback, pause/resume/cancel,
quiet hours, local time, frequency cap, error-rate pause, status callbacks (eager tasks)."""

from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone
from types import SimpleNamespace

import pytest
import time_machine
from django.utils import timezone

from broadcasts import sending, services
from broadcasts.models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus, SkipReason
from broadcasts.selectors import broadcast_stats
from broadcasts.tasks import broadcast_send_range_task, broadcasts_tick_task
from consent import services as consent_services
from consent.models import Consent, ConsentStatus, Source, Suppression
from messaging.providers import SendResult, get_provider

from .conftest import phone_for

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc


def make(topic, **changes):
    fields = {"name": "sale", "topic": topic, "channel": "sms", "body": 'Hi {{ first_name | "there" }}! STOP to opt out.',
              "respect_quiet_hours": False}
    fields.update(changes)
    return services.broadcast_create(**fields)


def run(broadcast, run_on_commit):
    """Schedule now and let the (eager) launch, fan-out and send tasks run."""
    with run_on_commit():
        services.broadcast_schedule(broadcast=broadcast)
    broadcast.refresh_from_db()
    return broadcast


def tick(run_on_commit):
    with run_on_commit():
        return broadcasts_tick_task()


class FakeProvider:
    """Records sends; `on_send(message, n)` runs before each (to land a STOP or a pause mid-broadcast)."""

    name = "fake"

    def __init__(self, on_send=None):
        self.sent = []
        self.on_send = on_send

    def send(self, message):
        if self.on_send:
            self.on_send(message, len(self.sent))
        self.sent.append(message)
        return SendResult(provider_message_id=f"fake-{len(self.sent)}")


@pytest.fixture
def fake_provider(monkeypatch):
    provider = FakeProvider()
    monkeypatch.setattr(sending, "thread_provider", lambda channel: provider)
    return provider


def test_every_consented_contact_gets_exactly_one_message(topic, consented, use_stand_in, run_on_commit):
    contacts = consented(25, topic, attributes={"first_name": "Ada"})
    consent_services.consent_revoke(contact=contacts[0], channel="sms", source=Source.API)  # not in the audience
    consented(3, topic, channel="whatsapp", start=100)  # other channel
    broadcast = run(make(topic), run_on_commit)
    assert broadcast.status == BroadcastStatus.COMPLETED
    assert broadcast.audience_size == 24
    messages = use_stand_in.messages()
    assert sorted(m["to"] for m in messages) == sorted(c.phone for c in contacts[1:])
    assert {m["body"] for m in messages} == {"Hi Ada! STOP to opt out."}
    stats = broadcast_stats(broadcast=broadcast)
    assert stats["audience"] == 24 and stats["sent"] == 24 and stats["queued"] == 0
    delivery = Delivery.objects.filter(broadcast=broadcast).first()
    assert delivery.provider_message_id.startswith("SM") and delivery.attempts == 1 and delivery.sent_at


def test_whatsapp_broadcast_sends_the_template(topic, consented, use_stand_in, run_on_commit):
    consented(3, topic, channel="whatsapp", country="FR", attributes={"first_name": "Zoé"})  # +1 numbers: platform rule
    template = {"name": "spring_sale", "language": "fr",
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{ first_name }}"}]}]}
    broadcast = run(make(topic, channel="whatsapp", body="", template=template), run_on_commit)
    assert broadcast.status == BroadcastStatus.COMPLETED
    messages = use_stand_in.messages(api="whatsapp")
    assert len(messages) == 3
    assert all(m["type"] == "template" for m in messages), messages[0]


@pytest.mark.parametrize("claim_size", [1, 4])
def test_stop_landing_mid_broadcast_stops_every_message_not_yet_handed_over(
        topic, consented, fake_provider, run_on_commit, settings, claim_size):
    """The claim (with its consent check) is the moment a message is handed over: rows claimed
    together go to the provider at once; every row not yet claimed when the STOP lands is skipped."""
    settings.BROADCAST_CLAIM_SIZE = claim_size
    contacts = consented(20, topic)
    # The 9th message is the first of the third claim of 4 (contacts 8-11 are in flight together).
    stoppers = {contacts[9 if claim_size == 1 else 12].pk, contacts[15].pk, contacts[19].pk}

    def stop_lands(message, n):
        if n == 8:  # while the 9th message goes out, three people text STOP
            for contact in contacts:
                if contact.pk in stoppers:
                    consent_services.consent_revoke(contact=contact, channel="sms", source=Source.SMS_KEYWORD)

    fake_provider.on_send = stop_lands
    broadcast = run(make(topic), run_on_commit)
    sent_to = [m.to for m in fake_provider.sent]
    assert len(sent_to) == len(set(sent_to)) == 17
    assert not {c.phone for c in contacts if c.pk in stoppers} & set(sent_to)
    skipped = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.SKIPPED)
    assert {d.contact_id for d in skipped} == stoppers
    assert {d.skip_reason for d in skipped} == {SkipReason.NOT_CURRENT}
    assert broadcast.status == BroadcastStatus.COMPLETED


def test_suppression_at_send_time_skips(topic, consented, fake_provider, run_on_commit):
    contacts = consented(5, topic)

    def suppress(message, n):
        if n == 0:
            consent_services.contact_suppress(contact=contacts[4], reason="invalid_number", source=Source.ADMIN)

    fake_provider.on_send = suppress
    broadcast = run(make(topic), run_on_commit)
    assert contacts[4].phone not in {m.to for m in fake_provider.sent}
    assert broadcast_stats(broadcast=broadcast)["skipped"] == 1


def test_duplicate_tasks_and_redelivery_never_send_twice(topic, consented, fake_provider, run_on_commit, settings):
    contacts = consented(12, topic)
    broadcast = run(make(topic), run_on_commit)
    assert len(fake_provider.sent) == 12
    # The same batches again (a duplicate task, a redelivery after a lost worker), and a full restart.
    for _ in range(3):
        broadcast_send_range_task.delay(broadcast.pk, 0, None)
    Delivery.objects.filter(broadcast=broadcast).update(status=DeliveryStatus.SENDING)  # as if crashed mid-call
    from broadcasts.models import Broadcast
    Broadcast.objects.filter(pk=broadcast.pk).update(status=BroadcastStatus.SENDING, progress_at=None)
    tick(run_on_commit)
    broadcast_send_range_task.delay(broadcast.pk, 0, None)
    assert len(fake_provider.sent) == 12
    assert sorted(m.to for m in fake_provider.sent) == sorted(c.phone for c in contacts)


def test_crash_between_provider_call_and_write_leaves_unknown(topic, consented, fake_provider, run_on_commit, settings,
                                                               monkeypatch):
    consented(6, topic)

    def crash(**kwargs):
        raise SystemExit("worker killed after the provider call")

    monkeypatch.setattr(sending, "record_outcomes", crash)
    broadcast = make(topic)
    with pytest.raises(SystemExit):
        run(broadcast, run_on_commit)
    assert len(fake_provider.sent) == settings.BROADCAST_CLAIM_SIZE
    monkeypatch.undo()
    monkeypatch.setattr(sending, "thread_provider", lambda channel: fake_provider)
    # The redelivered task sends the others but never the claimed ones.
    broadcast_send_range_task.delay(broadcast.pk, 0, None)
    assert len(fake_provider.sent) == 6
    assert len({m.to for m in fake_provider.sent}) == 6
    in_flight = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.SENDING)
    assert in_flight.count() == settings.BROADCAST_CLAIM_SIZE
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.BROADCAST_UNKNOWN_AFTER_SECONDS + 1)):
        summary = tick(run_on_commit)
    assert summary["unknown"] == settings.BROADCAST_CLAIM_SIZE
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.COMPLETED
    assert broadcast_stats(broadcast=broadcast)["unknown"] == settings.BROADCAST_CLAIM_SIZE
    assert len(fake_provider.sent) == 6


def test_launch_is_taken_once(topic, consented, run_on_commit, fake_provider):
    consented(3, topic)
    broadcast = make(topic, send_at=timezone.now() + timedelta(minutes=5))
    services.broadcast_schedule(broadcast=broadcast)
    assert services.broadcast_launch(broadcast_id=broadcast.pk) is False  # not due
    later = timezone.now() + timedelta(minutes=6)
    with run_on_commit():
        assert services.broadcast_launch(broadcast_id=broadcast.pk, now=later) is True
        assert services.broadcast_launch(broadcast_id=broadcast.pk, now=later) is False
    with time_machine.travel(later):
        tick(run_on_commit)
    assert len(fake_provider.sent) == 3


def test_fanout_in_chunks_covers_everyone_once(topic, consented, fake_provider, run_on_commit, settings):
    settings.BROADCAST_BATCH_SIZE = 3
    consented(23, topic)
    broadcast = make(topic)
    with run_on_commit():
        services.broadcast_schedule(broadcast=broadcast)
    # A second fan-out (a duplicate task) finds the cursor at the end and does nothing.
    assert services.broadcast_fanout(broadcast_id=broadcast.pk, chunk=5) == 0
    assert Delivery.objects.filter(broadcast=broadcast).count() == 23
    assert len(fake_provider.sent) == 23


# --- provider feedback ----------------------------------------------------------------------


def test_provider_opt_out_revokes_and_invalid_number_suppresses(topic, consented, use_stand_in, run_on_commit):
    contacts = consented(5, topic)
    use_stand_in.configure(recipients={contacts[1].phone: "opted_out", contacts[2].phone: "invalid",
                                       contacts[3].phone: 21612})
    broadcast = run(make(topic), run_on_commit)
    rows = {d.contact_id: d for d in Delivery.objects.filter(broadcast=broadcast)}
    assert rows[contacts[1].pk].status == DeliveryStatus.FAILED and rows[contacts[1].pk].error_code == "21610"
    assert rows[contacts[2].pk].error_code == "21211"
    assert rows[contacts[3].pk].status == DeliveryStatus.FAILED and rows[contacts[3].pk].error_code == "21612"
    revoked = Consent.objects.get(contact=contacts[1], topic=topic, channel="sms")
    assert revoked.status == ConsentStatus.REVOKED and revoked.source == Source.PROVIDER
    assert Suppression.objects.filter(phone_pseudonym=contacts[2].phone_pseudonym).exists()
    assert not Suppression.objects.filter(phone_pseudonym=contacts[3].phone_pseudonym).exists()
    assert broadcast.status == BroadcastStatus.COMPLETED


def test_rate_limit_is_retried_after_retry_after(topic, consented, use_stand_in, run_on_commit):
    contacts = consented(4, topic)
    use_stand_in.configure(faults=[{"kind": "429", "count": 1, "retry_after": "30"}])
    start = timezone.now()
    broadcast = run(make(topic), run_on_commit)
    waiting = Delivery.objects.get(broadcast=broadcast, status=DeliveryStatus.QUEUED)
    assert waiting.not_before >= start + timedelta(seconds=30)
    assert waiting.error_code in {"20429", "429"} and waiting.attempts == 1
    assert broadcast.status == BroadcastStatus.SENDING
    tick(run_on_commit)  # not yet due: nothing happens
    assert Delivery.objects.get(pk=waiting.pk).status == DeliveryStatus.QUEUED
    with time_machine.travel(waiting.not_before + timedelta(seconds=1)):
        tick(run_on_commit)
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.SENT and waiting.attempts == 2
    assert sorted(m["to"] for m in use_stand_in.messages()) == sorted(c.phone for c in contacts)
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.COMPLETED


def test_server_errors_retried_until_attempts_run_out(topic, consented, use_stand_in, run_on_commit, settings):
    settings.BROADCAST_MAX_ATTEMPTS = 2
    consented(1, topic)
    use_stand_in.configure(faults=[{"kind": "500", "count": 5}])
    broadcast = run(make(topic), run_on_commit)
    delivery = Delivery.objects.get(broadcast=broadcast)
    assert delivery.status == DeliveryStatus.QUEUED
    with time_machine.travel(delivery.not_before + timedelta(seconds=1)):
        tick(run_on_commit)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 2


def test_connection_dropped_mid_request_is_unknown_not_resent(topic, consented, use_stand_in, run_on_commit):
    consented(3, topic)
    use_stand_in.configure(faults=[{"kind": "reset", "count": 1}])
    broadcast = run(make(topic), run_on_commit)
    stats = broadcast_stats(broadcast=broadcast)
    assert stats["unknown"] == 1 and stats["sent"] == 2
    assert broadcast.status == BroadcastStatus.COMPLETED


def test_error_rate_pauses_the_broadcast_with_a_reason(topic, consented, use_stand_in, run_on_commit, settings):
    settings.BROADCAST_ERROR_RATE_MIN_SAMPLE = 4
    settings.BROADCAST_CLAIM_SIZE = 2
    contacts = consented(12, topic)
    use_stand_in.configure(recipients={c.phone: 21408 for c in contacts[:8]})
    broadcast = run(make(topic), run_on_commit)
    assert broadcast.status == BroadcastStatus.PAUSED
    assert "error rate" in broadcast.status_reason
    assert broadcast_stats(broadcast=broadcast)["queued"] > 0


# --- pause, resume, cancel ------------------------------------------------------------------


def test_pause_stops_new_sends_and_resume_continues(topic, consented, fake_provider, run_on_commit):
    contacts = consented(10, topic)
    holder = {}

    def pause_at_three(message, n):
        if n == 2:
            services.broadcast_pause(broadcast=holder["b"])

    fake_provider.on_send = pause_at_three
    holder["b"] = broadcast = make(topic)
    broadcast = run(broadcast, run_on_commit)
    assert broadcast.status == BroadcastStatus.PAUSED
    sent_before = len(fake_provider.sent)
    assert sent_before <= 4  # only what was already claimed when the pause landed
    fake_provider.on_send = None
    with run_on_commit():
        services.broadcast_resume(broadcast=broadcast)
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.COMPLETED
    assert sorted(m.to for m in fake_provider.sent) == sorted(c.phone for c in contacts)


def test_cancel_stops_for_good(topic, consented, fake_provider, run_on_commit):
    consented(10, topic)
    holder = {}

    def cancel_at_two(message, n):
        if n == 1:
            services.broadcast_cancel(broadcast=holder["b"])

    fake_provider.on_send = cancel_at_two
    holder["b"] = broadcast = make(topic)
    broadcast = run(broadcast, run_on_commit)
    assert broadcast.status == BroadcastStatus.CANCELLED
    sent = len(fake_provider.sent)
    assert sent <= 4
    tick(run_on_commit)
    broadcast_send_range_task.delay(broadcast.pk, 0, None)
    assert len(fake_provider.sent) == sent
    stats = broadcast_stats(broadcast=broadcast)
    assert stats["cancelled"] == 10 - sent and stats["queued"] == 0


# --- quiet hours, local time, frequency cap -------------------------------------------------

SUNDAY_NOON_PARIS = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)  # Sunday 12:00 Paris, 06:00 New York


def test_quiet_hours_defer_to_the_next_allowed_instant(topic, consented, fake_provider, run_on_commit):
    french = consented(3, topic, country="FR")
    american = consented(2, topic, country="US")
    with time_machine.travel(SUNDAY_NOON_PARIS, tick=False):
        broadcast = run(make(topic, respect_quiet_hours=True), run_on_commit)
        assert fake_provider.sent == []
        stats = broadcast_stats(broadcast=broadcast)
        assert stats["deferred"] == 5
        rows = {d.contact_id: d for d in Delivery.objects.filter(broadcast=broadcast)}
    # France: closed on Sundays, opens Monday 08:00 Paris (07:00 UTC). New York: 08:00 local (12:00 UTC).
    assert {rows[c.pk].not_before for c in french} == {datetime(2026, 3, 2, 7, 0, tzinfo=UTC)}
    assert {rows[c.pk].not_before for c in american} == {datetime(2026, 3, 1, 13, 0, tzinfo=UTC)}
    with time_machine.travel(datetime(2026, 3, 1, 13, 0, 1, tzinfo=UTC), tick=False):
        tick(run_on_commit)
    assert sorted(m.to for m in fake_provider.sent) == sorted(c.phone for c in american)
    with time_machine.travel(datetime(2026, 3, 2, 7, 0, 2, tzinfo=UTC), tick=False):
        tick(run_on_commit)
        broadcast.refresh_from_db()
    assert len(fake_provider.sent) == 5
    assert broadcast.status == BroadcastStatus.COMPLETED


def test_french_public_holiday_is_quiet(topic, consented, fake_provider, run_on_commit):
    consented(1, topic, country="FR")
    may_day = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)  # Friday 1 May, a public holiday
    with time_machine.travel(may_day, tick=False):
        broadcast = run(make(topic, respect_quiet_hours=True), run_on_commit)
    delivery = Delivery.objects.get(broadcast=broadcast)
    assert delivery.status == DeliveryStatus.DEFERRED
    assert delivery.not_before == datetime(2026, 5, 2, 6, 0, tzinfo=UTC)  # Saturday 08:00 Paris


def test_local_time_sends_at_each_recipients_wall_clock(topic, consented, fake_provider, run_on_commit):
    paris = consented(1, topic, country="FR")[0]
    new_york = consented(1, topic, country="US")[0]
    monday_early = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    with time_machine.travel(monday_early, tick=False):
        broadcast = run(make(topic, local_time=time(10, 0), respect_quiet_hours=True), run_on_commit)
    rows = {d.contact_id: d for d in Delivery.objects.filter(broadcast=broadcast)}
    assert rows[paris.pk].not_before == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert rows[new_york.pk].not_before == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, 1, tzinfo=UTC), tick=False):
        tick(run_on_commit)
    assert [m.to for m in fake_provider.sent] == [paris.phone]
    with time_machine.travel(datetime(2026, 3, 2, 15, 0, 1, tzinfo=UTC), tick=False):
        tick(run_on_commit)
    assert [m.to for m in fake_provider.sent] == [paris.phone, new_york.phone]


def test_frequency_cap_skips_with_the_reason(topic, consented, fake_provider, run_on_commit):
    contacts = consented(4, topic)
    run(make(topic, name="first"), run_on_commit)
    second = run(make(topic, name="second", frequency_cap=1), run_on_commit)
    third = run(make(topic, name="third", frequency_cap=2), run_on_commit)
    assert len(fake_provider.sent) == 8
    assert set(Delivery.objects.filter(broadcast=second).values_list("skip_reason", flat=True)) == {SkipReason.FREQUENCY_CAP}
    assert broadcast_stats(broadcast=third)["sent"] == 4
    assert len(contacts) == 4


# --- status callbacks -----------------------------------------------------------------------


def test_status_callbacks_move_deliveries_forward_only(topic, consented, use_stand_in, run_on_commit):
    consented(2, topic)
    broadcast = run(make(topic), run_on_commit)
    first, second = Delivery.objects.filter(broadcast=broadcast).order_by("id")
    services.delivery_status_update(channel="sms", provider_message_id=first.provider_message_id, status="delivered")
    services.delivery_status_update(channel="sms", provider_message_id=first.provider_message_id, status="sent")
    services.delivery_status_update(channel="sms", provider_message_id=first.provider_message_id, status="failed",
                                    error_code="30003")
    first.refresh_from_db()
    assert first.status == DeliveryStatus.DELIVERED and first.error_code == ""
    # Through the status handler registry, as the Twilio status callback calls it.
    from consent.webhooks import registry

    update = SimpleNamespace(channel="sms", provider_message_id=second.provider_message_id, status="failed",
                             error_code="30006", error_message="landline", occurred_at=timezone.now())
    registry.status_apply(provider="twilio", update=update, contact=None, message=None)
    second.refresh_from_db()
    assert second.status == DeliveryStatus.FAILED and second.error_code == "30006"
    assert services.delivery_status_update(channel="whatsapp", provider_message_id=second.provider_message_id,
                                           status="read") is False
    stats = broadcast_stats(broadcast=broadcast)
    assert stats["delivered"] == 1 and stats["failed"] == 1


def test_lost_send_tasks_are_enqueued_again_by_the_beat(topic, consented, fake_provider, run_on_commit, monkeypatch,
                                                         settings):
    from broadcasts import tasks

    consented(7, topic)
    monkeypatch.setattr(tasks.broadcast_send_range_task, "apply_async", lambda *a, **k: None)  # the broker lost them
    broadcast = run(make(topic), run_on_commit)
    assert broadcast.status == BroadcastStatus.SENDING and fake_provider.sent == []
    monkeypatch.undo()
    monkeypatch.setattr(sending, "thread_provider", lambda channel: fake_provider)
    assert tick(run_on_commit)["restarted"] == 0  # still within the stall allowance
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.BROADCAST_STALL_SECONDS + 1)):
        summary = tick(run_on_commit)
    assert summary["restarted"] >= 1
    assert len(fake_provider.sent) == 7
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.COMPLETED


def test_resume_after_a_provider_outage_sends_to_the_rows_it_failed(topic, consented, use_stand_in, run_on_commit,
                                                                    settings):
    settings.BROADCAST_MAX_ATTEMPTS = 1
    settings.BROADCAST_ERROR_RATE_MIN_SAMPLE = 4
    contacts = consented(10, topic)
    use_stand_in.configure(faults=[{"kind": "500", "count": 1000}])
    broadcast = run(make(topic), run_on_commit)
    assert broadcast.status == BroadcastStatus.PAUSED and "error rate" in broadcast.status_reason
    failed = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.FAILED)
    assert failed.count() >= 4 and all(d.retryable for d in failed)
    assert use_stand_in.messages() == []  # nothing was taken by the provider
    use_stand_in.reset()
    with run_on_commit():
        services.broadcast_resume(broadcast=broadcast)
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.COMPLETED
    assert sorted(m["to"] for m in use_stand_in.messages()) == sorted(c.phone for c in contacts)
    assert broadcast_stats(broadcast=broadcast)["failed"] == 0


def test_resume_never_retries_a_permanent_failure(topic, consented, use_stand_in, run_on_commit, settings):
    settings.BROADCAST_ERROR_RATE_MIN_SAMPLE = 4
    settings.BROADCAST_CLAIM_SIZE = 2
    contacts = consented(12, topic)
    use_stand_in.configure(recipients={c.phone: 21408 for c in contacts[:8]})
    broadcast = run(make(topic), run_on_commit)
    assert broadcast.status == BroadcastStatus.PAUSED
    permanent = set(Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.FAILED).values_list("pk", flat=True))
    with run_on_commit():
        services.broadcast_resume(broadcast=broadcast)
    still_failed = set(Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.FAILED).values_list("pk", flat=True))
    assert permanent <= still_failed
    sent_to = [m["to"] for m in use_stand_in.messages() if m.get("status", "accepted") != "error"]
    assert len(sent_to) == len(set(sent_to))


def test_claim_query_reads_each_range_with_the_gate_and_the_contact_fields(topic, consented, settings):
    """The claim reads the open rows of each range in contact order, the gate's event per row (none:
    consent not current, also for a revocation after fan-out) and the contact's JSON fields as stored."""
    from django.db import transaction

    contacts = consented(6, topic, attributes={"first_name": "Ada"})
    consent_services.consent_revoke(contact=contacts[2], channel="sms", source=Source.API)
    broadcast = make(topic)
    services.broadcast_schedule(broadcast=broadcast)
    assert services.broadcast_launch(broadcast_id=broadcast.pk)
    Delivery.objects.bulk_create([Delivery(broadcast=broadcast, contact=c, created_at=timezone.now()) for c in contacts])
    broadcast.refresh_from_db()
    consent_services.consent_revoke(contact=contacts[4], channel="sms", source=Source.SMS_KEYWORD)  # after fan-out
    now = timezone.now()
    ids = [c.pk for c in contacts]
    with transaction.atomic():
        for lo, hi, limit, expected in [(0, ids[-1], 4, ids[:4]), (ids[1], None, 4, ids[2:6]),
                                        (ids[3], ids[4], 4, ids[4:5]), (0, None, 10, ids)]:
            rows = sending.ClaimQueries(broadcast, lo, hi).claimable(now=now, limit=limit)
            assert [row[1] for row in rows] == expected
    assert [(row[1], row[4] is not None) for row in rows] == [(c.pk, i not in (2, 4)) for i, c in enumerate(contacts)]
    assert rows[0][8:] == (contacts[0].timezones, {"first_name": "Ada"})


# --- resume while a batch is in flight --------------------------------------------------------


def _launched(topic, n, consented):
    """A broadcast launched and fanned out (no send task run): its `n` rows are queued."""
    contacts = consented(n, topic)
    broadcast = make(topic)
    services.broadcast_schedule(broadcast=broadcast)
    assert services.broadcast_launch(broadcast_id=broadcast.pk)
    assert services.broadcast_fanout(broadcast_id=broadcast.pk) == n
    # What a send task holds: the broadcast as it loaded it when it started.
    return contacts, Broadcast.objects.select_related("topic").get(pk=broadcast.pk)


def _claim_all(broadcast):
    batch = sending.claim_batch(broadcast=broadcast, lo=0, hi=None, limit=100, now=timezone.now())
    assert batch is not None and batch.claims
    return batch.claims


def _outage(claims):
    return [sending.Outcome("retry", code="20500", message="Internal Server Error") for _ in claims]


def _serve_the_rest(broadcast, fake_provider, run_on_commit):
    """Later: the beat wakes what waits for its Retry-After and the send tasks run."""
    with time_machine.travel(timezone.now() + timedelta(seconds=600)):
        tick(run_on_commit)
        tick(run_on_commit)
    broadcast.refresh_from_db()
    return broadcast


def test_resume_while_a_batch_is_in_flight_serves_the_rows_it_fails_afterwards(topic, consented, settings,
                                                                                 fake_provider, run_on_commit):
    """The interleaving that lost rows: a send task claims a batch (rows `sending`) and calls the
    provider, which is down; the broadcast is paused (error rate) and resumed (provider back) while
    the calls are still out; only then does the task record its transient failures with retries
    used up. The resume's re-queue of failed+retryable rows has already run, so those rows must be
    re-queued by the record itself, and the broadcast must not complete without them."""
    settings.BROADCAST_MAX_ATTEMPTS = 1
    contacts, broadcast = _launched(topic, 3, consented)
    claims = _claim_all(broadcast)                                 # 1. task claims: rows `sending`
    services.broadcast_pause(broadcast=broadcast)                  # 2. paused while calls are out
    services.broadcast_resume(broadcast=broadcast)                 # 3. resumed before they return
    recorded = sending.record_outcomes(broadcast=broadcast, claims=claims, outcomes=_outage(claims))  # 4.
    assert recorded.failed == 0 and recorded.retried == 3 and recorded.retry_in is not None
    rows = Delivery.objects.filter(broadcast=broadcast)
    assert {(d.status, d.retryable) for d in rows} == {(DeliveryStatus.QUEUED, False)}
    assert all(d.not_before is not None and d.error_code == "20500" for d in rows)  # Retry-After still honoured
    assert not services.broadcast_finish_if_done(broadcast_id=broadcast.pk)  # pending re-send: not completed
    broadcast = _serve_the_rest(broadcast, fake_provider, run_on_commit)
    assert broadcast.status == BroadcastStatus.COMPLETED
    assert sorted(m.to for m in fake_provider.sent) == sorted(c.phone for c in contacts)  # each once
    assert set(rows.values_list("status", flat=True)) == {DeliveryStatus.SENT}


def test_resume_while_a_batch_is_in_flight_never_resends_what_may_have_left(topic, consented, settings,
                                                                             fake_provider, run_on_commit):
    """Same interleaving, but some calls may have reached the provider (read timeout, crash in the
    client) or were refused for good: those stay `unknown` / failed, never sent again."""
    settings.BROADCAST_MAX_ATTEMPTS = 1
    contacts, broadcast = _launched(topic, 3, consented)
    claims = _claim_all(broadcast)
    services.broadcast_pause(broadcast=broadcast)
    services.broadcast_resume(broadcast=broadcast)
    outcomes = [sending.Outcome("unknown", code="timeout"), sending.Outcome("failed", code="21408"),
                sending.Outcome("retry", code="20500")]
    recorded = sending.record_outcomes(broadcast=broadcast, claims=claims, outcomes=outcomes)
    assert (recorded.unknown, recorded.failed, recorded.retried) == (1, 1, 1)
    broadcast = _serve_the_rest(broadcast, fake_provider, run_on_commit)
    assert broadcast.status == BroadcastStatus.COMPLETED
    assert [m.to for m in fake_provider.sent] == [claims[2].message.to]
    by_id = {d.pk: d for d in Delivery.objects.filter(broadcast=broadcast)}
    assert [by_id[c.delivery_id].status for c in claims] == [
        DeliveryStatus.UNKNOWN, DeliveryStatus.FAILED, DeliveryStatus.SENT]
    assert not by_id[claims[1].delivery_id].retryable


def test_failures_recorded_while_paused_wait_for_the_resume(topic, consented, settings, fake_provider, run_on_commit):
    """The other order: the failures land while the broadcast is paused; the resume re-queues them."""
    settings.BROADCAST_MAX_ATTEMPTS = 1
    contacts, broadcast = _launched(topic, 3, consented)
    claims = _claim_all(broadcast)
    services.broadcast_pause(broadcast=broadcast)
    recorded = sending.record_outcomes(broadcast=broadcast, claims=claims, outcomes=_outage(claims))
    assert recorded.failed == 3
    rows = Delivery.objects.filter(broadcast=broadcast)
    assert {(d.status, d.retryable) for d in rows} == {(DeliveryStatus.FAILED, True)}
    with run_on_commit():
        services.broadcast_resume(broadcast=broadcast)
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.COMPLETED
    assert sorted(m.to for m in fake_provider.sent) == sorted(c.phone for c in contacts)


def test_retries_used_up_without_a_resume_fail_the_row(topic, consented, settings, fake_provider):
    """No resume since the claim: retries used up means failed (retryable by a later resume), not
    an endless re-queue, so that the error rate can pause the broadcast."""
    settings.BROADCAST_MAX_ATTEMPTS = 1
    contacts, broadcast = _launched(topic, 3, consented)
    claims = _claim_all(broadcast)
    recorded = sending.record_outcomes(broadcast=broadcast, claims=claims, outcomes=_outage(claims))
    assert recorded.failed == 3 and recorded.retried == 0
    assert {(d.status, d.retryable) for d in Delivery.objects.filter(broadcast=broadcast)} == {
        (DeliveryStatus.FAILED, True)}


# --- status callbacks that come before the provider's answer is recorded ----------------------

TWILIO_TOKEN = "test-twilio-auth-token"


@pytest.fixture
def post_status(client, settings):
    """post_status(url, fixture, **changes): a signed Twilio status callback to the URL we gave Twilio."""
    from consent.signatures import twilio_signature
    from tests.consent.webhooks.payloads import twilio_form

    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN

    def post(url, fixture, **changes):
        assert url.startswith(settings.PUBLIC_BASE_URL)
        form = twilio_form(fixture, **changes)
        return client.post(url[len(settings.PUBLIC_BASE_URL):], data=form.urlencode(),
                           content_type="application/x-www-form-urlencoded",
                           HTTP_X_TWILIO_SIGNATURE=twilio_signature(TWILIO_TOKEN, url, form))

    return post


class CallbackFirstProvider(FakeProvider):
    """Twilio calling back (to the StatusCallback URL we gave) before its API answer is read."""

    def __init__(self, post_status, fixture, **changes):
        super().__init__()
        self.post_status, self.fixture, self.changes, self.responses = post_status, fixture, changes, []

    def send(self, message):
        sid = f"SM{len(self.sent) + 1:032x}"
        changes = {"To": message.to, **self.changes}
        self.responses.append(self.post_status(message.status_callback, self.fixture, MessageSid=sid, SmsSid=sid,
                                               **changes))
        self.sent.append(message)
        return SendResult(provider_message_id=sid, status="queued")


def test_early_delivered_callbacks_find_their_deliveries_and_the_answers_keep_them(topic, consented, monkeypatch,
                                                                                   post_status, run_on_commit):
    contacts = consented(5, topic)
    provider = CallbackFirstProvider(post_status, "twilio_status_delivered.txt")
    monkeypatch.setattr(sending, "thread_provider", lambda channel: provider)
    broadcast = run(make(topic), run_on_commit)
    assert [r.status_code for r in provider.responses] == [204] * 5
    assert all("?ref=delivery-" in m.status_callback for m in provider.sent)
    rows = Delivery.objects.filter(broadcast=broadcast).order_by("contact_id")
    assert [(d.status, d.provider_message_id) for d in rows] == [
        (DeliveryStatus.DELIVERED, f"SM{i + 1:032x}") for i in range(5)]
    assert all(d.sent_at is not None for d in rows)
    assert broadcast.status == BroadcastStatus.COMPLETED
    stats = broadcast_stats(broadcast=broadcast)
    assert (stats["delivered"], stats["sent"]) == (5, 0)
    assert sorted(m.to for m in provider.sent) == sorted(c.phone for c in contacts)


def test_early_opt_out_error_revokes_the_deliverys_own_contact(topic, consented, monkeypatch, post_status,
                                                               run_on_commit):
    """21610 before the answer, and nothing in the callback but our reference to go by."""
    from consent.models import ConsentEvent, EventKind

    contacts = consented(3, topic)
    provider = CallbackFirstProvider(post_status, "twilio_status_failed_21610.txt", To=None)
    refused = {contacts[1].phone}
    real_send = provider.send

    def send(message):
        if message.to in refused:
            return real_send(message)
        provider.sent.append(message)
        return SendResult(provider_message_id=f"SMok{len(provider.sent)}")

    provider.send = send
    monkeypatch.setattr(sending, "thread_provider", lambda channel: provider)
    broadcast = run(make(topic), run_on_commit)
    assert [r.status_code for r in provider.responses] == [204]
    row = Delivery.objects.get(broadcast=broadcast, contact=contacts[1])
    assert (row.status, row.error_code) == (DeliveryStatus.FAILED, "21610")
    assert row.provider_message_id.startswith("SM0")
    consents = {c.contact_id: c for c in Consent.objects.filter(topic=topic, channel="sms")}
    assert (consents[contacts[1].pk].status, consents[contacts[1].pk].source) == (ConsentStatus.REVOKED, Source.PROVIDER)
    assert {consents[c.pk].status for c in (contacts[0], contacts[2])} == {ConsentStatus.ACTIVE}
    event = ConsentEvent.objects.get(kind=EventKind.REVOKED)
    assert (event.evidence["delivery_id"], event.evidence["broadcast_id"]) == (row.pk, broadcast.pk)
    stats = broadcast_stats(broadcast=broadcast)
    assert (stats["failed"], stats["sent"]) == (1, 2)
    # Redelivered, now found by the provider id: nothing changes twice.
    url = provider.sent[1].status_callback
    response = post_status(url, "twilio_status_failed_21610.txt", MessageSid=row.provider_message_id,
                           SmsSid=row.provider_message_id, To=None)
    assert response.status_code == 204
    assert ConsentEvent.objects.filter(kind=EventKind.REVOKED).count() == 1


def test_a_reference_to_a_delivery_with_another_provider_id_changes_nothing(topic, consented, fake_provider,
                                                                           post_status, run_on_commit, settings):
    contacts = consented(2, topic)
    broadcast = run(make(topic), run_on_commit)
    first = Delivery.objects.filter(broadcast=broadcast).order_by("id").first()
    before = Delivery.objects.values().get(pk=first.pk)
    url = f"{settings.PUBLIC_BASE_URL}/webhooks/twilio/status/?ref=delivery-{first.pk}"
    assert post_status(url, "twilio_status_delivered.txt", To=contacts[0].phone).status_code == 204
    assert post_status(url, "twilio_status_failed_21610.txt", To=None).status_code == 204
    assert Delivery.objects.values().get(pk=first.pk) == before
    assert Consent.objects.get(contact=contacts[0], topic=topic).status == ConsentStatus.ACTIVE


def test_references_to_deliveries_that_cannot_be_the_callbacks_are_ignored(topic, consented, post_status, settings):
    sms_contacts, sms = _launched(topic, 2, consented)
    queued = Delivery.objects.filter(broadcast=sms).order_by("id").first()  # never handed over
    consented(1, topic, channel="whatsapp", start=50)
    whatsapp = make(topic, channel="whatsapp", body="", template={"name": "sale", "language": "en", "components": []})
    services.broadcast_schedule(broadcast=whatsapp)
    assert services.broadcast_launch(broadcast_id=whatsapp.pk)
    assert services.broadcast_fanout(broadcast_id=whatsapp.pk) == 1
    on_whatsapp = Delivery.objects.get(broadcast=whatsapp)
    Delivery.objects.filter(pk=on_whatsapp.pk).update(status=DeliveryStatus.SENDING)  # an SMS callback is not about it
    before = list(Delivery.objects.values().order_by("id"))
    for ref in (f"delivery-{queued.pk}", f"delivery-{on_whatsapp.pk}", "delivery-abc", "delivery-999999",
                f"message-{queued.pk}", f"delivery-{queued.pk}&ref=delivery-{on_whatsapp.pk}"):
        url = f"{settings.PUBLIC_BASE_URL}/webhooks/twilio/status/?ref={ref}"
        assert post_status(url, "twilio_status_delivered.txt", To=sms_contacts[0].phone).status_code == 204
    assert list(Delivery.objects.values().order_by("id")) == before


def test_a_callback_to_another_number_does_not_claim_the_delivery(topic, consented, post_status):
    contacts, broadcast = _launched(topic, 2, consented)
    claims = _claim_all(broadcast)
    assert post_status(claims[0].message.status_callback, "twilio_status_delivered.txt",
                       To=contacts[1].phone).status_code == 204
    row = Delivery.objects.get(pk=claims[0].delivery_id)
    assert (row.status, row.provider_message_id) == (DeliveryStatus.SENDING, None)


@pytest.mark.parametrize("kind", ["unknown", "failed", "retry"])
def test_the_sends_other_outcomes_do_not_undo_an_early_callback(topic, consented, post_status, kind):
    """A read timeout (or an error) recorded after the provider took the message and called back."""
    contacts, broadcast = _launched(topic, 1, consented)
    [claim] = _claim_all(broadcast)
    sid = "SM1234567890abcdef1234567890abcdef"
    assert post_status(claim.message.status_callback, "twilio_status_delivered.txt", To=claim.message.to).status_code == 204
    sending.record_outcomes(broadcast=broadcast, claims=[claim], outcomes=[sending.Outcome(kind, code="timeout")])
    row = Delivery.objects.get(pk=claim.delivery_id)
    assert (row.status, row.provider_message_id, row.error_code) == (DeliveryStatus.DELIVERED, sid, "")


def test_the_sends_answer_never_replaces_a_provider_id_recorded_by_a_callback(topic, consented, post_status):
    contacts, broadcast = _launched(topic, 1, consented)
    [claim] = _claim_all(broadcast)
    assert post_status(claim.message.status_callback, "twilio_status_sent.txt", To=claim.message.to).status_code == 204
    sending.record_outcomes(broadcast=broadcast, claims=[claim],
                            outcomes=[sending.Outcome("sent", provider_message_id="SManother")])
    row = Delivery.objects.get(pk=claim.delivery_id)
    assert (row.status, row.provider_message_id) == (DeliveryStatus.SENT, "SM1234567890abcdef1234567890abcdef")
    assert row.sent_at is not None


def test_outcomes_write_every_row_before_any_consent_change(topic, consented, monkeypatch):
    """The ledger's head lock is held from the first append to the commit; a status callback locks its
    delivery row first and the ledger next: the sender takes them in that order too."""
    contacts, broadcast = _launched(topic, 3, consented)
    claims = _claim_all(broadcast)
    seen = []
    from consent import services as consent_services

    real_revoke = consent_services.consent_revoke

    def revoke(**kwargs):
        seen.append(sorted(Delivery.objects.filter(broadcast=broadcast).values_list("status", flat=True)))
        return real_revoke(**kwargs)

    monkeypatch.setattr(consent_services, "consent_revoke", revoke)
    outcomes = [sending.Outcome("opted_out", code="21610"), sending.Outcome("sent", provider_message_id="SMa"),
                sending.Outcome("sent", provider_message_id="SMb")]
    sending.record_outcomes(broadcast=broadcast, claims=claims, outcomes=outcomes)
    assert seen == [[DeliveryStatus.FAILED, DeliveryStatus.SENT, DeliveryStatus.SENT]]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("not __import__('django.db').db.connection.vendor == 'postgresql'", reason="row locks: PostgreSQL")
@pytest.mark.parametrize("first", ["opted_out", "invalid"])
def test_opt_outs_of_a_batch_do_not_deadlock_with_a_stop_of_one_of_those_contacts(topic, consented, monkeypatch, first):
    """A batch brings a provider opt-out or invalid number (contact A), then an opt-out (B), while B
    texts STOP. The batch acts on A and appends to the ledger (head locked until commit); B's STOP
    has locked B's consent and waits for the head. Were B's consent locked by the batch only now,
    each would wait for the other."""
    import threading

    from django.db import connection, transaction

    from consent import inbound
    from consent import services as consent_services_module
    from consent.webhooks.parsers import InboundMessage

    with monkeypatch.context() as setup:  # no eager launch and send at commit: the test plays the send task
        setup.setattr(transaction, "on_commit", lambda *args, **kwargs: None)
        contacts, broadcast = _launched(topic, 2, consented)
        claims = _claim_all(broadcast)
    first_append_done, stop_locked_b = threading.Event(), threading.Event()
    real_append, real_locked = consent_services_module.event_append, consent_services_module._consents_locked

    def append(**kwargs):
        event = real_append(**kwargs)
        if threading.current_thread().name == "batch" and not first_append_done.is_set():
            first_append_done.set()
            stop_locked_b.wait(timeout=3)  # give the STOP its chance to lock B's consent now
        return event

    def locked(*args, **kwargs):
        found = real_locked(*args, **kwargs)
        if threading.current_thread().name == "stop":
            stop_locked_b.set()
        return found

    monkeypatch.setattr(consent_services_module, "event_append", append)
    monkeypatch.setattr(consent_services_module, "_consents_locked", locked)
    errors = []

    def run(work):
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    outcomes = [sending.Outcome(first, code="21610" if first == "opted_out" else "21211"),
                sending.Outcome("opted_out", code="21610")]
    batch = threading.Thread(name="batch", target=run,
                             args=(lambda: sending.record_outcomes(broadcast=broadcast, claims=claims, outcomes=outcomes),))
    stop = threading.Thread(name="stop", target=run, args=(lambda: inbound.inbound_message_receive(
        message=InboundMessage(channel="sms", provider_message_id="SMstopduringbatch", sender=claims[1].contact.phone,
                               text="STOP"), provider="twilio"),))
    batch.start()
    assert first_append_done.wait(timeout=10)
    stop.start()
    batch.join(30), stop.join(30)
    assert errors == []
    assert Consent.objects.get(contact=claims[1].contact).status == ConsentStatus.REVOKED
    if first == "opted_out":
        assert Consent.objects.get(contact=claims[0].contact).status == ConsentStatus.REVOKED
    else:
        assert Suppression.objects.filter(phone_pseudonym=claims[0].contact.phone_pseudonym).exists()
    assert set(Delivery.objects.filter(broadcast=broadcast).values_list("status", flat=True)) == {DeliveryStatus.FAILED}


# --- placeholders at send time --------------------------------------------------------------


def test_a_contact_lacking_a_placeholder_is_skipped_with_the_reason(topic, consented, fake_provider, run_on_commit):
    named = consented(2, topic, attributes={"first_name": "Ada"})
    unnamed = consented(2, topic, start=2) + consented(1, topic, attributes={"first_name": ""}, start=4)
    broadcast = run(make(topic, body="Cyber Monday deals for {{ first_name }}!"), run_on_commit)
    assert sorted(m.to for m in fake_provider.sent) == sorted(c.phone for c in named)
    assert {m.body for m in fake_provider.sent} == {"Cyber Monday deals for Ada!"}
    skipped = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.SKIPPED)
    assert sorted(d.contact_id for d in skipped) == sorted(c.pk for c in unnamed)
    assert {(d.skip_reason, d.error_message) for d in skipped} == {(SkipReason.MISSING_ATTRIBUTE, "no value for first_name")}
    assert broadcast.status == BroadcastStatus.COMPLETED
    assert broadcast_stats(broadcast=broadcast)["skipped"] == 3


def test_a_fallback_fills_in_for_a_missing_attribute(topic, consented, fake_provider, run_on_commit):
    consented(1, topic, attributes={"first_name": "Ada"})
    consented(1, topic, start=1)
    run(make(topic, body='Deals for {{ first_name | "you" }}!'), run_on_commit)
    assert sorted(m.body for m in fake_provider.sent) == ["Deals for Ada!", "Deals for you!"]


def test_a_whatsapp_template_lacking_a_placeholder_is_skipped(topic, consented, fake_provider, run_on_commit):
    template = {"name": "sale", "language": "en_US",
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{ first_name }}"}]}]}
    consented(1, topic, channel="whatsapp", attributes={"first_name": "Ada"}, country="FR")
    consented(1, topic, channel="whatsapp", country="FR", start=1)
    broadcast = run(make(topic, channel="whatsapp", body="", template=template), run_on_commit)
    assert [m.template["components"][0]["parameters"][0]["text"] for m in fake_provider.sent] == ["Ada"]
    assert set(Delivery.objects.filter(broadcast=broadcast).values_list("skip_reason", flat=True)) == {
        "", SkipReason.MISSING_ATTRIBUTE}


def test_the_attribute_is_looked_for_at_the_send_not_before(topic, consented, fake_provider, run_on_commit):
    [contact] = consented(1, topic, country="FR")
    with time_machine.travel(SUNDAY_NOON_PARIS, tick=False):
        broadcast = run(make(topic, body="Hi {{ first_name }}", respect_quiet_hours=True), run_on_commit)
    contact.attributes = {"first_name": "Zoé"}  # added while the delivery waited for Monday
    contact.save(update_fields=["attributes"])
    with time_machine.travel(datetime(2026, 3, 2, 7, 0, 1, tzinfo=UTC), tick=False):
        tick(run_on_commit)
    assert [m.body for m in fake_provider.sent] == ["Hi Zoé"]
    assert broadcast.deliveries.get().status == DeliveryStatus.SENT


def test_the_content_is_parsed_once_per_send_task_not_per_recipient(topic, consented, fake_provider, run_on_commit,
                                                                   monkeypatch):
    from broadcasts import content

    consented(10, topic, attributes={"first_name": "Ada"})
    broadcast = make(topic)
    parses = []
    real_parse = content.parse
    monkeypatch.setattr(content, "parse", lambda text, **kw: parses.append(text) or real_parse(text, **kw))
    run(broadcast, run_on_commit)
    assert len(fake_provider.sent) == 10
    assert 1 <= len(parses) <= 2  # one send task (batch of 10), whatever the claims and recipients


# --- deferred: local time counts, and says when ---------------------------------------------


def test_recipients_waiting_for_their_local_time_count_as_deferred_with_when(topic, consented, fake_provider,
                                                                            run_on_commit, marketer_client):
    consented(1, topic, country="FR")
    consented(2, topic, country="US", start=1)
    monday_early = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    with time_machine.travel(monday_early, tick=False):
        broadcast = run(make(topic, local_time=time(10, 0), respect_quiet_hours=True), run_on_commit)
        body = marketer_client.get(f"/api/v1/broadcasts/{broadcast.pk}/").json()
        deliveries = marketer_client.get(f"/api/v1/broadcasts/{broadcast.pk}/deliveries/").json()["results"]
    assert body["status"] == "sending"
    assert body["stats"]["deferred"] == 3 and body["stats"]["queued"] == 0
    assert body["stats"]["next_due_at"] == "2026-03-02T09:00:00Z"  # 10:00 in Paris
    assert sorted(d["not_before"] for d in deliveries) == [
        "2026-03-02T09:00:00Z", "2026-03-02T15:00:00Z", "2026-03-02T15:00:00Z"]
    assert {d["status"] for d in deliveries} == {"deferred"}
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, 1, tzinfo=UTC), tick=False):
        tick(run_on_commit)
        stats = broadcast_stats(broadcast=broadcast)
    assert stats["deferred"] == 2 and stats["sent"] == 1
    assert stats["next_due_at"] == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def test_quiet_hours_waits_say_when_they_are_due(topic, consented, fake_provider, run_on_commit):
    consented(1, topic, country="FR")
    with time_machine.travel(SUNDAY_NOON_PARIS, tick=False):
        broadcast = run(make(topic, respect_quiet_hours=True), run_on_commit)
        stats = broadcast_stats(broadcast=broadcast)
    assert stats["deferred"] == 1 and stats["next_due_at"] == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def test_twilio_status_callback_of_a_broadcast_delivery_carries_its_reference(use_stand_in, settings):
    settings.PUBLIC_BASE_URL = "https://consent.example.com"
    broadcast = Broadcast(channel="sms", body="Hi", template=None)
    message = sending.outgoing_for(broadcast=broadcast, phone=phone_for(1), country="US", attributes=None,
                                   reference="delivery-456")
    get_provider("sms").send(message)
    [sent] = use_stand_in.messages(to=phone_for(1))
    assert sent["status_callback"] == "https://consent.example.com/webhooks/twilio/status/?ref=delivery-456"


# --- the gate sees a revocation received and not applied yet (rules 7 and 15) --------------------


def _stop_at_intake(phone, text="STOP", channel="sms"):
    """A STOP recorded by the webhook's intake, not applied yet (no apply task has run)."""
    from consent.intake import records
    from consent.intake.services import intake_record
    from consent.webhooks.parsers import InboundMessage

    message = InboundMessage(channel=channel, provider_message_id=f"SMgate{phone}{text[:4]}{channel}", sender=phone,
                             text=text)
    assert intake_record(records.record_of(message, provider="twilio", received_at=timezone.now()))


@pytest.mark.parametrize("text", ["STOP", "please stop texting me"])
def test_a_stop_recorded_between_fanout_and_claim_holds_the_message_until_applied(topic, consented, text):
    from consent.intake.applier import intake_apply_pending

    contacts, broadcast = _launched(topic, 3, consented)
    _stop_at_intake(contacts[1].phone, text)  # lands at intake after the fan-out, before the claim
    batch = sending.claim_batch(broadcast=broadcast, lo=0, hi=None, limit=100, now=timezone.now())
    assert sorted(c.contact_id for c in batch.claims) == sorted([contacts[0].pk, contacts[2].pk])
    held = Delivery.objects.get(broadcast=broadcast, contact=contacts[1])
    assert (held.status, held.rule) == (DeliveryStatus.DEFERRED, sending.REVOCATION_PENDING_RULE)
    assert held.authorized_by is None
    assert intake_apply_pending() == 1
    later = timezone.now() + sending.REVOCATION_PENDING_WAIT + timedelta(seconds=1)
    batch = sending.claim_batch(broadcast=broadcast, lo=0, hi=None, limit=100, now=later)
    assert batch.claims == []
    held.refresh_from_db()
    assert (held.status, held.skip_reason) == (DeliveryStatus.SKIPPED, SkipReason.NOT_CURRENT)


def test_a_pending_stop_on_another_channel_holds_only_with_scope_all(topic, consented, settings):
    contacts, broadcast = _launched(topic, 2, consented)
    _stop_at_intake(contacts[0].phone, channel="whatsapp")
    batch = sending.claim_batch(broadcast=broadcast, lo=0, hi=None, limit=1, now=timezone.now())
    assert [c.contact_id for c in batch.claims] == [contacts[0].pk]  # scope channel: SMS is not held
    settings.CONSENT_REVOKE_SCOPE = "all"
    _stop_at_intake(contacts[1].phone, channel="whatsapp")
    batch = sending.claim_batch(broadcast=broadcast, lo=0, hi=None, limit=100, now=timezone.now())
    assert batch.claims == [] and batch.deferred == 1


def test_a_non_revoking_text_at_intake_holds_nothing(topic, consented):
    contacts, broadcast = _launched(topic, 1, consented)
    _stop_at_intake(contacts[0].phone, "where is my order?")
    batch = sending.claim_batch(broadcast=broadcast, lo=0, hi=None, limit=100, now=timezone.now())
    assert [c.contact_id for c in batch.claims] == [contacts[0].pk]


def test_a_test_send_is_refused_while_a_stop_waits(topic, consented, fake_provider):
    from django.core.exceptions import ValidationError

    contacts, broadcast = _launched(topic, 1, consented)
    _stop_at_intake(contacts[0].phone)
    with pytest.raises(ValidationError, match="revocation"):
        sending.broadcast_test_send(broadcast=broadcast, phone=contacts[0].phone)
    assert fake_provider.sent == []


def test_the_tick_never_completes_a_broadcast_whose_fan_out_lands_while_it_looks(topic, consented):
    """The interleaving the production stage caught: the beat's tick looked for open rows of a broadcast just
    launched (none yet), the fan-out then inserted its rows and marked itself done, and the tick completed
    the broadcast with every row still queued, none ever sent. Here the fan-out runs right after the tick's
    first statement on the delivery table in broadcast_finish_if_done: whatever that statement is, the
    broadcast must stay `sending` with its rows open."""
    from django.db import connection

    consented(2, topic)
    broadcast = make(topic)
    services.broadcast_schedule(broadcast=broadcast)
    assert services.broadcast_launch(broadcast_id=broadcast.pk)
    state = {"fanned_out": False}

    def fan_out_after_first_delivery_query(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not state["fanned_out"] and Delivery._meta.db_table in sql:
            state["fanned_out"] = True
            assert services.broadcast_fanout(broadcast_id=broadcast.pk) == 2
        return result

    with connection.execute_wrapper(fan_out_after_first_delivery_query):
        completed = services.broadcast_finish_if_done(broadcast_id=broadcast.pk)
    assert state["fanned_out"]
    broadcast.refresh_from_db()
    assert not completed and broadcast.status == BroadcastStatus.SENDING and broadcast.fanout_done
    assert set(Delivery.objects.filter(broadcast=broadcast).values_list("status", flat=True)) == {DeliveryStatus.QUEUED}
    # Once every row is handed over and recorded, the same call completes it.
    Delivery.objects.filter(broadcast=broadcast).update(status=DeliveryStatus.SENT)
    assert services.broadcast_finish_if_done(broadcast_id=broadcast.pk)
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.COMPLETED
