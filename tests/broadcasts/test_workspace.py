"""The marketers' workspace: dashboard figures and charts, the broadcast page's buttons, progress and dry run."""

import re
import zoneinfo
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from broadcasts import selectors, services
from broadcasts.dashboard import charts
from broadcasts.dashboard import selectors as dashboard
from broadcasts.models import Broadcast, BroadcastStatus, Delivery
from consent import inbound
from consent import services as consent_services
from consent.audit.actions import Staff
from consent.care import services as care_services
from consent.models import Consent, Conversation, Source, Suppression
from consent.webhooks.parsers import InboundMessage

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client, make_user):
    user, _ = make_user("marketer")
    client.force_login(get_user_model().objects.get(pk=user.pk))
    return client


def test_view_site_opens_the_dashboard_with_the_ledgers_numbers(marketer, topic, consented):
    consented(3, topic)
    consented(2, topic, channel="whatsapp", start=10)
    contact = consented(1, topic, start=20)[0]
    consent_services.consent_revoke(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    index = marketer.get("/admin/").content.decode()
    assert 'href="/workspace/"' in index  # "View site"
    html = marketer.get("/workspace/").content.decode()
    assert 'id="funnel-promo"' in html and 'id="daily-promo"' in html and "<svg" in html
    assert 'data-stage="confirmed" data-count="6"' in html  # imported proofs count as confirmed
    assert 'data-stage="revoked" data-count="1"' in html
    assert re.search(r'data-channel="sms">3<', html) and re.search(r'data-channel="whatsapp">2<', html)
    assert 'class="figure optouts">1<' in html
    assert "Times in UTC" in html


def test_the_dashboard_needs_a_staff_login(client):
    response = client.get("/workspace/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_revocation_review_panel_counts_the_unresolved_reviews(marketer, topic):
    from consent.models import Message, RevocationReview

    now = timezone.now()
    contact = consent_services.contact_get_or_create(phone="+14155550166")

    def review(n, deadline, due_soon_at, resolved=False):
        message = Message.objects.create(contact=contact, channel="sms", direction="in", kind="inbound",
                                         body="stop the red one", status="received", provider_message_id=f"SMr{n}")
        return RevocationReview.objects.create(contact=contact, channel="sms", message=message, rule="stop_the_x",
                                               received_at=now, deadline=deadline, due_soon_at=due_soon_at,
                                               resolved_at=now if resolved else None)

    review(1, now + timedelta(days=9), now + timedelta(days=7))  # open
    review(2, now + timedelta(days=1), now - timedelta(hours=1))  # standing out
    review(3, now - timedelta(hours=1), now - timedelta(days=2))  # past its deadline
    review(4, now + timedelta(days=9), now + timedelta(days=7), resolved=True)
    assert dashboard.revocation_reviews(now=now) == {"open": 3, "overdue": 1, "due_soon": 1}
    html = marketer.get("/workspace/").content.decode()
    assert '<span class="figure" id="reviews-open">3</span>' in html


def test_the_opt_out_rate_counts_stops_from_recipients_in_the_24_hours_after(topic, consented, run_on_commit):
    contacts = consented(4, topic)
    broadcast = services.broadcast_create(name="b", topic=topic, channel="sms", body="Sale!", respect_quiet_hours=False)
    with run_on_commit():
        services.broadcast_schedule(broadcast=broadcast)
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.COMPLETED
    consent_services.consent_revoke(contact=contacts[0], channel="sms", source=Source.SMS_KEYWORD)
    (row,) = dashboard.broadcast_figures()
    assert row.handed_over == 4 and row.optouts == 1 and row.optout_rate == 0.25


def test_the_dry_run_gives_each_reason(topic, consented, settings, time_machine):
    settings.BROADCAST_QUIET_HOURS = {"US": {"start": "08:00", "end": "08:01"}}  # a narrowing: the US is waiting
    time_machine.move_to(datetime(2026, 12, 2, 18, 30, tzinfo=dt_timezone.utc))  # a Wednesday
    consented(3, topic)
    consented(2, topic, country="FR", start=50)
    suppressed = consented(1, topic, start=60)[0]
    Suppression.objects.create(phone_pseudonym=suppressed.phone_pseudonym, reason="invalid_number")
    revoked = consented(1, topic, start=70)[0]
    consent_services.consent_revoke(contact=revoked, channel="sms", source=Source.SMS_KEYWORD)
    consent_services.optin_request(phone="+14155550199", topic=topic, channel="sms", source=Source.API, evidence={"a": 1})
    expired = consented(1, topic, start=80)[0]
    Consent.objects.filter(contact=expired).update(expires_at=timezone.now() - timedelta(days=1))
    broadcast = services.broadcast_create(name="b", topic=topic, channel="sms", body="Sale!")
    run = selectors.broadcast_dry_run(broadcast=broadcast)
    assert run["audience"] == 5 and run["eligible"] == 5
    assert run["excluded"] == {"pending": 1, "revoked": 1, "expired": 1, "suppressed": 1, "no_ledger_event": 0,
                               "frequency_cap": 0, "missing_attribute": 0}
    # 18:30 UTC: 13:30 in New York (+1212), outside the narrowed 08:00-08:01; 19:30 in France, inside its window.
    assert run["deferred"]["quiet_hours"] == 3 and run["eligible_now"] == 2


def test_the_dry_run_counts_the_frequency_cap(topic, consented, run_on_commit):
    consented(2, topic)
    first = services.broadcast_create(name="a", topic=topic, channel="sms", body="One", respect_quiet_hours=False)
    with run_on_commit():
        services.broadcast_schedule(broadcast=first)
    assert Delivery.objects.filter(broadcast=first, status="sent").count() == 2
    capped = services.broadcast_create(name="b", topic=topic, channel="sms", body="Two", frequency_cap=1)
    run = selectors.broadcast_dry_run(broadcast=capped)
    assert run["excluded"]["frequency_cap"] == 2 and run["eligible"] == 0


def test_the_broadcast_page_has_buttons_dry_run_and_progress(marketer, topic, consented, run_on_commit):
    consented(3, topic)
    broadcast = services.broadcast_create(name="Spring", topic=topic, channel="sms", body="Sale!", respect_quiet_hours=False)
    url = f"/admin/broadcasts/broadcast/{broadcast.pk}/"
    html = marketer.get(url + "change/").content.decode()
    for button in ("schedule", "pause", "resume", "cancel", "test-send"):
        assert f'id="button-{button}"' in html
    assert 'id="dry-run"' in html and re.search(r'id="dry-eligible-now">3<', html)
    assert re.search(r'id="button-pause" disabled', html)
    assert marketer.get(url + "act/schedule/").status_code == 405  # a GET changes nothing
    with run_on_commit():
        response = marketer.post(url + "act/schedule/")
    assert response.status_code == 302
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.COMPLETED  # eager tasks: launched, sent and finished
    progress = marketer.get(url + "progress/").json()
    assert progress["percent"] == 100 and progress["stats"]["sent"] == 3 and progress["live"] is False
    response = marketer.post(url + "act/pause/", follow=True)
    assert "cannot be paused" in response.content.decode()
    assert marketer.post(url + "act/explode/").status_code == 403


def test_test_send_from_the_page(marketer, topic, consented, outbox):
    contact = consented(1, topic)[0]
    broadcast = services.broadcast_create(name="Spring", topic=topic, channel="sms", body="Sale!")
    url = f"/admin/broadcasts/broadcast/{broadcast.pk}/test-send/"
    response = marketer.post(url, {"phone": contact.phone}, follow=True)
    assert "Test sent to" in response.content.decode()
    assert outbox.sent[-1].body == "Sale!"
    response = marketer.post(url, {"phone": "nonsense"}, follow=True)
    assert response.status_code == 200 and "Test send:" in response.content.decode()
    assert not Delivery.objects.exists()


def test_times_are_shown_in_the_marketers_time_zone_labelled(marketer, topic, settings):
    settings.WORKSPACE_TIME_ZONE = "Europe/Paris"
    broadcast = services.broadcast_create(name="Spring", topic=topic, channel="sms", body="Sale!",
                                          send_at=timezone.now().replace(year=2099, month=1, day=1, hour=12, minute=0))
    html = marketer.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/").content.decode()
    assert "Times in Europe/Paris" in html and "01 Jan 2099 13:00 (Europe/Paris)" in html
    api = marketer.get("/api/v1/topics/")
    assert api.status_code in (200, 401)  # the API keeps its own time zone (UTC): the override is for staff pages


def test_pause_resume_cancel_buttons(marketer, topic):
    broadcast = services.broadcast_create(name="b", topic=topic, channel="sms", body="Sale!")
    services.broadcast_schedule(broadcast=broadcast, send_at=timezone.now().replace(year=2099))
    url = f"/admin/broadcasts/broadcast/{broadcast.pk}/act/"
    for action, status in [("pause", "paused"), ("resume", "scheduled"), ("cancel", "cancelled")]:
        marketer.post(url + f"{action}/")
        broadcast.refresh_from_db()
        assert broadcast.status == status


def test_charts_escape_their_labels():
    svg = charts.funnel(title="<script>", stages=[("<b>", 3)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<b>" not in svg
    line = charts.line_chart(title="t", labels=["a", "b"], series={"optins": [0, 5]})
    assert 'data-series="optins"' in line and ">5<" in line  # the axis maximum
    assert Broadcast.objects.count() == 0


def _care_question(phone, text="Where is my order?"):
    message = InboundMessage(channel="whatsapp", provider_message_id=f"wamid.{phone}.{timezone.now().timestamp()}",
                             sender=phone, text=text)
    inbound.inbound_message_receive(message=message, provider="whatsapp_cloud")
    return Conversation.objects.get(contact__phone=phone, channel="whatsapp")


def _care_reply(conversation, body="Here to help."):
    care_services.conversation_reply(conversation_id=conversation.pk, body=body, by=Staff(actor="user:ada"))


def test_the_median_first_response_time_per_day(marketer, settings, time_machine):
    settings.WORKSPACE_TIME_ZONE = "Europe/Paris"
    zone = zoneinfo.ZoneInfo("Europe/Paris")

    def at(month, day, hh, mm):
        time_machine.move_to(datetime(2026, month, day, hh, mm, tzinfo=dt_timezone.utc), tick=False)

    # 30 Nov: waits of 2, 10 and 1 minutes (median 2 min); a second reply in the same wait does not count.
    at(11, 30, 9, 0)
    conv_a = _care_question("+33612340001")
    at(11, 30, 9, 2)
    _care_reply(conv_a)
    at(11, 30, 10, 0)
    conv_b = _care_question("+33612340002")
    at(11, 30, 10, 10)
    _care_reply(conv_b)
    at(11, 30, 11, 0)
    conv_c = _care_question("+33612340003")
    at(11, 30, 11, 1)
    _care_reply(conv_c)
    at(11, 30, 11, 40)
    _care_reply(conv_c)
    # 1 Dec: a closed conversation reopened starts a new wait (30 min); a new message in an answered open one
    # is no first response.
    care_services.conversation_close(conversation_id=conv_a.pk, by=Staff(actor="user:ada"))
    at(12, 1, 8, 0)
    _care_question("+33612340001", "Me again")
    at(12, 1, 8, 30)
    _care_reply(conv_a)
    at(12, 1, 9, 0)
    _care_question("+33612340002", "And?")
    at(12, 1, 9, 45)
    _care_reply(conv_b)
    # Replies at 00:30 and 00:40 in Paris count on 2 Dec there (23:30 and 23:40 UTC on 1 Dec): 30 and 50 min.
    at(12, 1, 23, 0)
    conv_d = _care_question("+33612340004")
    at(12, 1, 22, 50)
    conv_e = _care_question("+33612340005")
    at(12, 1, 23, 30)
    _care_reply(conv_d)
    at(12, 1, 23, 40)
    _care_reply(conv_e)
    at(12, 3, 12, 0)

    figures = dashboard.first_response_medians(days=5, zone=zone)
    assert [(f.day.isoformat(), f.answered, f.median_seconds) for f in figures] == [
        ("2026-11-29", 0, None), ("2026-11-30", 3, 120), ("2026-12-01", 1, 1800), ("2026-12-02", 2, 2400),
        ("2026-12-03", 0, None)]
    # The window bounds what is read: 30 Nov falls out of a three-day window.
    assert [f.answered for f in dashboard.first_response_medians(days=3, zone=zone)] == [1, 2, 0]

    html = marketer.get("/workspace/").content.decode()
    assert 'id="first-response"' in html
    assert re.search(r'data-day="2026-11-30">.*?data-seconds="120">2 min 0 s<', html, re.S)
    assert re.search(r'data-day="2026-12-02">.*?data-seconds="2400">40 min 0 s<', html, re.S)
    assert 'data-value="1800"' in html and "01 Dec: 30 min 0 s" in html


def test_the_first_response_query_is_one_query(django_assert_num_queries):
    with django_assert_num_queries(1):
        dashboard.first_response_medians(days=30, zone=dt_timezone.utc)


def test_duration_labels_and_the_bar_chart():
    assert [charts.duration_label(s) for s in (None, 0, 59.6, 61, 3600, 5400)] == [
        "–", "0 s", "1 min 0 s", "1 min 1 s", "1 h 0 min", "1 h 30 min"]
    svg = charts.duration_bar_chart(title="<t>", labels=["a", "b", "c"], values=[None, 90, 600])
    assert svg.count("<rect") == 2 and "&lt;t&gt;" in svg and ">15 min 0 s<" in svg  # the axis: 15 min
