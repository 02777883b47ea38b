"""Webhooks while the database cannot be reached: kept in the inbound fallback and answered 200, 503
only when neither can take them, drained once and in order into the intake table and applied from there
(rule 15). The outage itself is played by the intake write (and the updates applied in the request)
raising the error Django raises then; tests/faults/ cut a real database."""

import pytest
from django.db import OperationalError

from consent import inbound
from consent.intake import fallback
from consent.intake import services as intake_services
from consent.intake.services import intake_record
from consent.models import ConsentEvent, ConsentStatus, EventKind, InboundReceipt, Message
from consent.tasks import inbound_apply_task, inbound_fallback_drain_task
from consent.webhooks import accepted
from tests.consent.test_intake import record
from tests.plugins.fallback_redis import closed_port_url

from .payloads import twilio_form, whatsapp_body
from .test_twilio_views import INBOUND, PHONE, STATUS, active_consent, inbound_form
from .test_whatsapp_views import active_consent as whatsapp_consent
from .test_whatsapp_views import at_recording_time  # noqa: F401  (fixture, for the WhatsApp payload's times)

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_down(monkeypatch):
    """Recording a webhook fails as when PostgreSQL refuses connections; .restore() ends the outage."""

    def refused(*args, **kwargs):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    class Outage:
        def restore(self):
            monkeypatch.undo()

    monkeypatch.setattr(accepted, "intake_record", refused)
    for name in ("provider_status_apply", "whatsapp_preference_apply"):
        monkeypatch.setattr(inbound, name, refused)
    return Outage()


def revoked_events():
    return ConsentEvent.objects.filter(kind=EventKind.REVOKED).count()


def test_a_stop_during_an_outage_is_kept_answered_200_and_applied_once_afterwards(
        topic, twilio_post, fallback_redis, database_down, run_on_commit):
    consent = active_consent(topic)
    responses = [twilio_post(INBOUND, inbound_form("STOP")) for _ in range(3)]  # Twilio's retries, too
    assert [r.status_code for r in responses] == [200] * 3
    assert responses[0].content.decode().endswith("<Response/>")
    assert fallback.fallback_depth() == 3
    assert not InboundReceipt.objects.exists()
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.ACTIVE and not revoked_events()
    assert fallback.promotions_held()

    database_down.restore()
    with run_on_commit():
        assert inbound_fallback_drain_task() == 3  # moved to the intake table, then applied by its applier
    assert InboundReceipt.objects.get().applied_at is not None
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    assert revoked_events() == 1
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert Message.objects.filter(kind=Message.Kind.STOP_REPLY).count() == 1
    assert fallback.fallback_depth() == 0 and not fallback.promotions_held()
    assert inbound_fallback_drain_task() == 0


def test_a_webhook_arriving_while_the_fallback_holds_some_joins_them_in_order(
        topic, twilio_post, fallback_redis, database_down, run_on_commit, settings):
    consent = active_consent(topic)
    assert twilio_post(INBOUND, inbound_form("STOP", sid="SM" + "1" * 32)).status_code == 200
    database_down.restore()
    # The database is back, the STOP still waits: the START must not overtake it. (Tests run tasks
    # eagerly: the drain the webhook asks for runs inside the request, in order.)
    with run_on_commit():
        assert twilio_post(INBOUND, inbound_form("START", sid="SM" + "2" * 32)).status_code == 200
    assert fallback.fallback_depth() == 0
    consent.refresh_from_db()
    # STOP, then START (a new opt-in, pending its confirmation); the other way round would end revoked.
    assert consent.status == ConsentStatus.PENDING
    kinds = list(ConsentEvent.objects.filter(contact=consent.contact).order_by("seq").values_list("kind", flat=True))
    assert kinds[kinds.index(EventKind.REVOKED):] == [EventKind.REVOKED, EventKind.REQUESTED, EventKind.CONFIRMATION_SENT]


def test_redis_going_away_between_the_depth_and_the_append_records_at_intake_not_503(
        topic, twilio_post, fallback_redis, monkeypatch):
    fallback.fallback_append([("record", {"n": 0})])  # something waits: a new webhook would join it

    def gone(entries):
        raise fallback.FallbackUnavailable("append: Connection refused")

    monkeypatch.setattr(fallback, "fallback_append", gone)
    response = twilio_post(INBOUND, inbound_form("STOP"))
    assert response.status_code == 200
    assert InboundReceipt.objects.filter(intent="stop").count() == 1  # the one durable place left


def test_neither_database_nor_fallback_is_503_with_retry_after(topic, twilio_post, settings, database_down):
    settings.REDIS_URL = closed_port_url()
    response = twilio_post(INBOUND, inbound_form("STOP"))
    assert response.status_code == 503
    assert response["Retry-After"]


def test_the_embedded_default_answers_503_when_its_own_store_cannot_be_written(topic, twilio_post, settings,
                                                                               database_down):
    settings.REDIS_URL = None
    response = twilio_post(INBOUND, inbound_form("STOP"))
    assert response.status_code == 503 and response["Retry-After"]


def test_a_bad_payload_is_still_400_and_never_kept(topic, twilio_post, fallback_redis, database_down):
    response = twilio_post(INBOUND, inbound_form("STOP", phone="not a number"))
    assert response.status_code == 400
    assert fallback.fallback_depth() == 0


def test_a_status_callback_during_an_outage_is_kept_and_applied(topic, twilio_post, fallback_redis, database_down,
                                                                run_on_commit):
    consent = active_consent(topic)
    assert twilio_post(STATUS, twilio_form("twilio_status_failed_21610.txt")).status_code == 204
    assert fallback.fallback_depth() == 1
    database_down.restore()
    with run_on_commit():
        assert inbound_fallback_drain_task() == 1
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED  # 21610: the person opted out at Twilio
    assert consent.contact.phone == PHONE


def test_a_whatsapp_batch_during_an_outage_is_kept_whole_and_applied(topic, whatsapp_post, fallback_redis,
                                                                     database_down, run_on_commit):
    consent = whatsapp_consent(topic)
    response = whatsapp_post(whatsapp_body("whatsapp_text_stop.json"))
    assert response.status_code == 200 and response.json() == {"ok": True, "kept": True}
    database_down.restore()
    with run_on_commit():
        assert inbound_fallback_drain_task() == 1
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    assert revoked_events() == 1


def test_the_drain_leaves_everything_in_place_while_the_database_is_still_down(topic, twilio_post, fallback_redis,
                                                                               database_down):
    twilio_post(INBOUND, inbound_form("STOP"))
    assert inbound_fallback_drain_task() == 0  # logged, retried by the next beat
    assert fallback.fallback_depth() == 1


def test_readyz_shows_the_fallback_depth(api_client, fallback_redis, twilio_post, topic, database_down):
    assert api_client.get("/readyz/").json()["inbound"] == {"fallback": 0, "fallback_set_aside": 0, "unapplied": 0}
    twilio_post(INBOUND, inbound_form("STOP"))
    assert api_client.get("/readyz/").json()["inbound"]["fallback"] == 1


def test_readyz_counts_what_is_recorded_and_not_applied_yet(api_client, fallback_redis, settings):
    intake_record(record("STOP"))
    assert api_client.get("/readyz/").json()["inbound"]["unapplied"] == 1


def test_readyz_without_a_fallback_says_so(api_client, settings):
    settings.REDIS_URL = None
    assert api_client.get("/readyz/").json()["inbound"] == {"fallback": None, "fallback_set_aside": None,
                                                            "unapplied": 0}


@pytest.fixture
def no_task_runs():
    """Nothing queued runs until the test runs it (as when the workers are still catching up). Its own
    patches: the outage's restore() undoes those of the test's monkeypatch."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accepted, "enqueue", lambda *args, **kwargs: None)  # the drain's kick
        patch.setattr(intake_services, "enqueue", lambda *args, **kwargs: None)  # the applier's trigger
        yield


def test_a_start_after_recovery_waits_behind_the_kept_stop_and_the_number_ends_as_its_last_message_says(
        topic, twilio_post, fallback_redis, database_down, run_on_commit, no_task_runs):
    """A STOP kept during the outage, then a START once the database answers again, before the drain ran."""
    consent = active_consent(topic)
    assert twilio_post(INBOUND, inbound_form("STOP", sid="SM" + "1" * 32)).status_code == 200
    database_down.restore()
    assert twilio_post(INBOUND, inbound_form("START", sid="SM" + "2" * 32)).status_code == 200
    # The START did not reach the intake table ahead of the STOP: it joined the fallback behind it.
    assert not InboundReceipt.objects.exists() and fallback.fallback_depth() == 2
    with run_on_commit():
        assert inbound_fallback_drain_task() == 2
    assert list(InboundReceipt.objects.order_by("id").values_list("intent", flat=True)) == ["stop", "start"]
    with run_on_commit():
        inbound_apply_task()
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.PENDING  # START (a new opt-in) last, as the person's last message says
    # Once the fallback is empty, webhooks go to the intake table again.
    assert twilio_post(INBOUND, inbound_form("STOP", sid="SM" + "3" * 32)).status_code == 200
    assert fallback.fallback_depth() == 0 and InboundReceipt.objects.count() == 3
