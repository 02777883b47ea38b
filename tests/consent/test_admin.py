"""Django admin: topics edited through the services, contacts with their timeline, a read-only ledger."""

import pytest
from django.contrib.auth import get_user_model

from consent import services
from consent.models import ConsentEvent, Source, Topic

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


def test_topic_created_and_edited_in_admin_makes_text_versions(superuser_client):
    form = {"slug": "deals", "name": "Deals", "keywords": "deals, DEALS", "consent_ttl_days": "90",
            "consent_text": "I agree to deals.", "confirmation_message": "Reply YES for deals.",
            "help_message": "Deals help.", "texts-TOTAL_FORMS": "0", "texts-INITIAL_FORMS": "0"}
    response = superuser_client.post("/admin/consent/topic/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    topic = Topic.objects.get(slug="deals")
    assert topic.keywords == ["DEALS"] and topic.current_text.version == 1
    form["consent_text"] = "I agree to deals, new words."
    response = superuser_client.post(f"/admin/consent/topic/{topic.pk}/change/", form)
    assert response.status_code == 302
    topic.refresh_from_db()
    assert topic.current_text.version == 2
    assert topic.texts.count() == 2


def test_topic_admin_refuses_reserved_keyword(superuser_client):
    form = {"slug": "deals", "name": "Deals", "keywords": "STOP", "consent_text": "a", "confirmation_message": "b",
            "help_message": "c", "texts-TOTAL_FORMS": "0", "texts-INITIAL_FORMS": "0"}
    response = superuser_client.post("/admin/consent/topic/add/", form)
    assert response.status_code == 200 and "reserved keyword" in response.content.decode()
    assert not Topic.objects.filter(slug="deals").exists()


def _topic_form(keywords):
    return {"slug": "deals", "name": "Deals", "keywords": keywords, "consent_text": "a", "confirmation_message": "b",
            "help_message": "c", "texts-TOTAL_FORMS": "0", "texts-INITIAL_FORMS": "0"}


@pytest.mark.parametrize("keywords,message", [
    (", ".join(f"K{i}" for i in range(21)), "At most 20 keywords (21 given)."),
    (", ".join(f"K{i}" for i in range(40_000)), "At most 20 keywords (40000 given)."),
    ("DEALS, " + "X" * 33, "A keyword has at most 32 characters"),
], ids=["21 keywords", "40000 keywords", "33 characters"])
def test_topic_admin_has_the_api_caps_on_keywords(superuser_client, keywords, message):
    response = superuser_client.post("/admin/consent/topic/add/", _topic_form(keywords))
    assert response.status_code == 200 and message in response.content.decode()
    assert not Topic.objects.filter(slug="deals").exists()


def test_topic_admin_accepts_twenty_keywords_and_drops_repeats_in_order(superuser_client):
    keywords = ", ".join([f"k{i}" for i in range(20)] + ["K3", " k0 "])
    response = superuser_client.post("/admin/consent/topic/add/", _topic_form(keywords + ", " + "Y" * 32))
    assert response.status_code == 200 and "At most 20 keywords (21 given)." in response.content.decode()
    response = superuser_client.post("/admin/consent/topic/add/", _topic_form(keywords))
    assert response.status_code == 302
    assert Topic.objects.get(slug="deals").keywords == [f"K{i}" for i in range(20)]


def test_keyword_deduplication_is_linear():
    import time

    words = [f"w{i}" for i in range(100_000)] * 2
    started = time.perf_counter()
    assert services.topic_keywords_normalise(words) == [w.upper() for w in words[:100_000]]
    assert time.perf_counter() - started < 2  # a list used as a set took minutes here


def test_ledger_is_read_only_in_admin_even_for_superusers(superuser_client, topic):
    services.optin_request(phone="+14155550123", topic=topic, channel="sms", source=Source.API)
    event = ConsentEvent.objects.first()
    assert superuser_client.get("/admin/consent/consentevent/").status_code == 200
    assert superuser_client.get("/admin/consent/consentevent/add/").status_code == 403
    assert superuser_client.post(f"/admin/consent/consentevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    detail = superuser_client.post(f"/admin/consent/consentevent/{event.pk}/change/", {"kind": "confirmed"})
    assert detail.status_code in (200, 403)
    event.refresh_from_db()
    assert event.kind == "requested"


def test_contact_page_shows_consent_timeline(superuser_client, topic):
    result = services.optin_request(phone="+14155550123", topic=topic, channel="sms", source=Source.API)
    page = superuser_client.get(f"/admin/consent/contact/{result.consent.contact.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Consent timeline" in body and "requested" in body


def test_marketer_and_auditor_can_sign_in_to_admin_with_their_permissions(client, make_user):
    marketer, _ = make_user("marketer")
    client.force_login(marketer)
    assert client.get("/admin/consent/topic/").status_code == 200
    assert client.get("/admin/consent/consentevent/").status_code == 200
    auditor, _ = make_user("auditor")
    client.force_login(auditor)
    assert client.get("/admin/consent/consentevent/").status_code == 200
    assert client.get("/admin/consent/topic/add/").status_code == 403
