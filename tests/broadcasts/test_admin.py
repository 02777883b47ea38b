"""Django admin for marketers: create, preview the audience, watch progress, act."""

import pytest
from django.contrib.auth import get_user_model

from broadcasts import services
from broadcasts.models import Broadcast, BroadcastStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer_browser(client, make_user):
    user, _ = make_user("marketer")
    client.force_login(get_user_model().objects.get(pk=user.pk))
    return client


def test_marketer_creates_a_broadcast_and_sees_audience_and_progress(marketer_browser, topic, consented):
    consented(3, topic)
    response = marketer_browser.post("/admin/broadcasts/broadcast/add/", {
        "name": "Spring", "topic": topic.pk, "channel": "sms", "body": "Sale {{ shoe_size }}", "template": "null",
        "respect_quiet_hours": "on", "deliveries-TOTAL_FORMS": "0", "deliveries-INITIAL_FORMS": "0",
    })
    assert response.status_code == 200 and "shoe_size" in response.content.decode()
    response = marketer_browser.post("/admin/broadcasts/broadcast/add/", {
        "name": "Spring", "topic": topic.pk, "channel": "sms", "body": "Sale!", "template": "null",
        "respect_quiet_hours": "on", "deliveries-TOTAL_FORMS": "0", "deliveries-INITIAL_FORMS": "0",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    broadcast = Broadcast.objects.get()
    page = marketer_browser.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/").content.decode()
    assert "3 contact(s) with a current sms consent" in page
    assert "broadcast-progress" in page
    progress = marketer_browser.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/progress/").json()
    assert progress["status"] == "draft" and progress["stats"]["audience"] == 3  # a draft: the audience it would have now
    assert marketer_browser.get("/admin/broadcasts/broadcast/").status_code == 200


def test_the_audience_preview_warns_who_lacks_a_placeholder(marketer_browser, topic, consented):
    consented(2, topic, attributes={"first_name": "Ada", "city": "Lyon"})
    consented(3, topic, start=2)
    broadcast = services.broadcast_create(name="b", topic=topic, channel="sms",
                                          body='Hi {{ first_name }} from {{ city | "town" }}')
    page = marketer_browser.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/").content.decode()
    assert "5 contact(s) with a current sms consent" in page
    assert "3 would be skipped (3 lack {{ first_name }}: no fallback)" in page
    assert "3 get the fallback of {{ city }}" in page


def test_a_malformed_placeholder_is_refused_in_the_admin_form(marketer_browser, topic):
    response = marketer_browser.post("/admin/broadcasts/broadcast/add/", {
        "name": "Spring", "topic": topic.pk, "channel": "sms", "body": "Sale {{ first name }}", "template": "null",
        "respect_quiet_hours": "on", "deliveries-TOTAL_FORMS": "0", "deliveries-INITIAL_FORMS": "0",
    })
    assert response.status_code == 200 and "Malformed placeholder" in response.content.decode()
    assert not Broadcast.objects.exists()


def test_admin_actions_pause_resume_cancel(marketer_browser, topic):
    broadcast = services.broadcast_create(name="b", topic=topic, channel="sms", body="Sale!")
    services.broadcast_schedule(broadcast=broadcast, send_at=broadcast.created_at.replace(year=2099))
    url = "/admin/broadcasts/broadcast/"
    for action, status in [("pause", "paused"), ("resume", "scheduled"), ("cancel", "cancelled")]:
        marketer_browser.post(url, {"action": action, "_selected_action": [broadcast.pk]})
        broadcast.refresh_from_db()
        assert broadcast.status == status
    marketer_browser.post(url, {"action": "resume", "_selected_action": [broadcast.pk]})
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.CANCELLED
