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
