"""The one outbound lifecycle: the same statuses, transitions, recording, upkeep and retry policy for
transactional messages (consent.Message) and broadcast deliveries (broadcasts.Delivery)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from broadcasts.models import Broadcast, Delivery
from consent import services
from consent.models import Channel, Message
from messaging import lifecycle
from messaging.lifecycle import Outcome, Status
from messaging.providers import (
    InvalidRecipientError,
    OutgoingMessage,
    PermanentProviderError,
    Provider,
    RecipientOptedOutError,
    SendResult,
    TransientProviderError,
    twilio,
    whatsapp,
)

pytestmark = pytest.mark.django_db

SMS = OutgoingMessage(to="+14155550123", channel="sms", body="hi", reference="message-1")


_numbers = iter(range(10**6))


def _contact():
    return services.contact_get_or_create(phone=f"+1415555{next(_numbers):04d}")


def _message(status=Status.SENDING, **fields):
    return Message.objects.create(contact=_contact(), channel=Channel.SMS, direction=Message.Direction.OUTBOUND,
                                  kind=Message.Kind.REPLY, body="hi", status=status, **fields)


def _delivery(topic, status=Status.SENDING, **fields):
    broadcast = Broadcast.objects.create(name="b", topic=topic, channel=Channel.SMS, body="hi")
    return Delivery.objects.create(broadcast=broadcast, contact=_contact(), status=status, created_at=timezone.now(),
                                   **fields)


@pytest.fixture(params=["message", "delivery"])
def row_of(request, topic):
    """Make a row of either kind: every case below holds for both."""
    def make(status=Status.SENDING, **fields):
        return _message(status, **fields) if request.param == "message" else _delivery(topic, status, **fields)
    return make


def test_both_kinds_are_one_model_shape_with_one_status_set():
    assert issubclass(Message, lifecycle.OutboundMessage) and issubclass(Delivery, lifecycle.OutboundMessage)
    assert Message._meta.get_field("status").choices == Delivery._meta.get_field("status").choices == Status.choices


# --- send: what a provider's answer means --------------------------------------------------


class Answers(Provider):
    name = "answers"

    def __init__(self, answer):
        self.answer = answer

    def send(self, message):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _unknown(error):
    error.outcome_unknown = True
    return error


@pytest.mark.parametrize(("answer", "kind"), [
    (SendResult(provider_message_id="SM1"), "sent"),
    (TransientProviderError("503", code="503", http_status=503), "retry"),
    (_unknown(TransientProviderError("read timeout", code="timeout")), "unknown"),
    (_unknown(PermanentProviderError("2xx without sid", code="malformed_response")), "unknown"),
    (RecipientOptedOutError("stopped", code="21610"), "opted_out"),
    (InvalidRecipientError("landline", code="21614"), "invalid"),
    (PermanentProviderError("bad request", code="21602"), "failed"),
    (RuntimeError("a bug"), "unknown"),  # it may have left: never resent
])
def test_send_classifies_every_answer_and_never_raises(answer, kind):
    outcome = lifecycle.send(Answers(answer), SMS)
    assert outcome.kind == kind
    if kind == "sent":
        assert outcome.provider_message_id == "SM1"


@pytest.mark.parametrize(("error", "rate_limited"), [
    (twilio.error_for_code("20429", "too many requests", http_status=400), True),
    (TransientProviderError("429", code="429", http_status=429), True),
    (whatsapp.error_for_code("130429", "throughput", http_status=400), True),
    (whatsapp.error_for_code("80007", "rate limit", http_status=400), True),
    (whatsapp.error_for_code("131000", "something went wrong", http_status=500), False),
    (TransientProviderError("503", code="503", http_status=503), False),
])
def test_the_provider_modules_say_which_errors_ask_us_to_slow_down(error, rate_limited):
    assert lifecycle.send(Answers(error), SMS).rate_limited is rate_limited


# --- the retry policy ----------------------------------------------------------------------


def test_retry_after_from_the_provider_wins():
    assert lifecycle.retry_delay(0, retry_after=42) == 42
    assert lifecycle.retry_delay(5, retry_after=0) == 0.5  # never at once


def test_backoff_grows_with_jitter_and_is_capped():
    policy = lifecycle.RETRY_POLICY
    for retries in range(12):
        ceiling = min(policy["retry_backoff_max"], policy["retry_backoff"] * 2 ** retries)
        delays = [lifecycle.retry_delay(retries) for _ in range(50)]
        assert all(1 <= delay <= max(1, ceiling) for delay in delays)
    assert max(lifecycle.retry_delay(10) for _ in range(50)) > policy["retry_backoff"] * 2  # it does grow


def test_both_sending_tasks_are_declared_with_the_one_policy():
    from broadcasts.tasks import broadcast_send_range_task
    from consent.tasks import message_deliver_task

    for task in (message_deliver_task, broadcast_send_range_task):
        assert {name: getattr(task, name) for name in lifecycle.RETRY_POLICY} == lifecycle.RETRY_POLICY


# --- claim and record ------------------------------------------------------------------------


def test_claim_moves_only_open_rows_and_counts_the_attempt(row_of):
    queued, sent = row_of(Status.QUEUED), row_of(Status.SENT)
    now = timezone.now()
    model = type(queued)
    assert lifecycle.claim(model.objects.filter(pk__in=[queued.pk, sent.pk]), now=now) == 1
    queued.refresh_from_db()
    assert (queued.status, queued.attempts, queued.status_at) == (Status.SENDING, 1, now)


def test_record_sent_lands_only_on_rows_awaiting_their_outcome(row_of):
    waiting, delivered = row_of(), row_of(Status.DELIVERED, provider_message_id="SMcb")
    model, now = type(waiting), timezone.now()
    lifecycle.record_sent(model, [(waiting.pk, "SMa"), (delivered.pk, "SMcb")], now)
    waiting.refresh_from_db()
    delivered.refresh_from_db()
    assert (waiting.status, waiting.provider_message_id, waiting.sent_at) == (Status.SENT, "SMa", now)
    assert (delivered.status, delivered.provider_message_id, delivered.sent_at) == (Status.DELIVERED, "SMcb", now)


def test_record_sent_never_replaces_an_id_a_callback_recorded(row_of):
    row = row_of(provider_message_id="SMcallback")
    lifecycle.record_sent(type(row), [(row.pk, "SManswer")], timezone.now())
    row.refresh_from_db()
    assert (row.status, row.provider_message_id) == (Status.SENDING, "SMcallback")


@pytest.mark.parametrize(("kind", "retry", "status"), [
    ("retry", True, Status.QUEUED), ("retry", False, Status.FAILED), ("unknown", False, Status.UNKNOWN),
    ("failed", False, Status.FAILED), ("opted_out", False, Status.FAILED), ("invalid", False, Status.FAILED),
])
def test_outcomes_that_did_not_go_out(row_of, kind, retry, status):
    row = row_of()
    fields = lifecycle.outcome_fields(Outcome(kind, code="E1", message="why"), timezone.now(), retry=retry)
    assert lifecycle.record_outcome(type(row), row.pk, fields)
    row.refresh_from_db()
    assert (row.status, row.error_code, row.error_message) == (status, "E1", "why")


def test_an_outcome_never_undoes_what_a_faster_callback_recorded(row_of):
    row = row_of(Status.DELIVERED)
    fields = lifecycle.outcome_fields(Outcome("unknown", code="timeout"), timezone.now(), retry=False)
    assert not lifecycle.record_outcome(type(row), row.pk, fields)
    row.refresh_from_db()
    assert row.status == Status.DELIVERED


# --- status callbacks: one forward-only map ---------------------------------------------------


@pytest.mark.parametrize(("start", "callback", "end"), [
    (Status.SENDING, "sent", Status.SENT),
    (Status.UNKNOWN, "delivered", Status.DELIVERED),
    (Status.SENT, "read", Status.READ),
    (Status.DELIVERED, "sent", Status.DELIVERED),  # late: never back
    (Status.DELIVERED, "failed", Status.DELIVERED),  # the phone confirmed it
    (Status.READ, "delivered", Status.READ),
    (Status.SENT, "failed", Status.FAILED),
    (Status.SENT, "canceled", Status.FAILED),
    (Status.SENT, "queued", Status.SENT),  # not a status of ours to move to
    (Status.SKIPPED, "delivered", Status.SKIPPED),  # never handed over
])
def test_callbacks_move_both_kinds_forward_only(row_of, start, callback, end):
    row = row_of(start)
    moved = lifecycle.callback_status_apply(type(row).objects.filter(pk=row.pk), status=callback,
                                            occurred_at=timezone.now(), error_code="30003" if end == Status.FAILED else "")
    row.refresh_from_db()
    assert row.status == end and moved == (start != end)


# --- upkeep ----------------------------------------------------------------------------------


def test_rows_left_sending_by_a_crash_become_unknown_never_resent(row_of):
    now = timezone.now()
    stale, fresh = row_of(status_at=now - timedelta(minutes=30)), row_of(status_at=now)
    model = type(stale)
    assert lifecycle.mark_stale_unknown(model.objects.all(), cutoff=now - timedelta(minutes=10), now=now) == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, fresh.status) == (Status.UNKNOWN, Status.SENDING)
