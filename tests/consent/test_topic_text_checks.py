"""Topics whose texts lack brand, frequency, rates, HELP or STOP: warnings (API, admin), or refused when strict."""

import os
import subprocess
import sys

import pytest
from django.contrib.messages import get_messages

from consent.models import Topic

pytestmark = pytest.mark.django_db

COMPLETE = {
    "slug": "deals",
    "name": "Acme Deals",
    "keywords": ["DEALS"],
    "consent_text": "I agree to receive Acme Deals offers by text, up to 4 msgs/month. Msg & data rates may apply. "
                    "Reply HELP for help, STOP to cancel.",
    "confirmation_message": "Acme Deals: up to 4 msgs/month. Msg & data rates may apply. Reply YES to confirm, "
                            "HELP for help, STOP to cancel.",
    "help_message": "Acme Deals: help@acme.example. Reply STOP to opt out.",
    "welcome_message": "Acme Deals: welcome! Up to 4 msgs/month. Reply HELP for help, STOP to cancel.",
}
BARE = {**COMPLETE, "slug": "bare", "keywords": ["BARE"], "consent_text": "I want offers.",
        "confirmation_message": "Reply YES to confirm.", "welcome_message": ""}


def codes(body):
    return sorted((w["field"], w["code"]) for w in body["warnings"])


def test_complete_texts_have_no_warnings(marketer_client):
    response = marketer_client.post("/api/v1/topics/", COMPLETE, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["warnings"] == []
    assert response.json()["welcome_message"] == COMPLETE["welcome_message"]


def test_warn_lists_what_each_text_lacks_on_post_get_and_patch(marketer_client):
    response = marketer_client.post("/api/v1/topics/", BARE, format="json")
    assert response.status_code == 201
    assert codes(response.json()) == sorted([
        ("consent_text", "missing_brand"), ("consent_text", "missing_frequency"), ("consent_text", "missing_rates"),
        ("consent_text", "missing_help"), ("consent_text", "missing_stop"),
        # the prompt gets "Reply YES to confirm, STOP to cancel." only when it has no YES: it has one
        ("confirmation_message", "missing_brand"), ("confirmation_message", "missing_frequency"),
        ("confirmation_message", "missing_rates"), ("confirmation_message", "missing_help"),
        ("confirmation_message", "missing_stop"),
        # the default welcome names the brand, HELP and STOP, never the topic's frequency
        ("welcome_message", "missing_frequency"),
    ])
    warning = response.json()["warnings"][0]
    assert set(warning) == {"field", "element", "code", "message"}
    assert '"Acme Deals"' in warning["message"] and "CTIA" in warning["message"]
    listed = {t["slug"]: t for t in marketer_client.get("/api/v1/topics/").json()}
    assert codes(listed["bare"]) == codes(response.json())
    assert codes(marketer_client.get("/api/v1/topics/bare/").json()) == codes(response.json())
    patched = marketer_client.patch("/api/v1/topics/bare/", {"consent_text": COMPLETE["consent_text"]}, format="json")
    assert patched.status_code == 200
    assert not [w for w in patched.json()["warnings"] if w["field"] == "consent_text"]
    assert [w for w in patched.json()["warnings"] if w["field"] == "confirmation_message"]


def test_the_brand_is_the_setting_when_set(marketer_client, settings):
    settings.CONSENT_BRAND_NAME = "Globex"
    response = marketer_client.post("/api/v1/topics/", COMPLETE, format="json")
    assert ("consent_text", "missing_brand") in codes(response.json())


def test_strict_refuses_post_with_a_400_naming_fields_and_elements(marketer_client, settings):
    settings.CONSENT_TEXT_CHECKS = "strict"
    response = marketer_client.post("/api/v1/topics/", BARE, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"consent_text", "confirmation_message", "welcome_message"}
    assert len(body["consent_text"]) == 5
    assert any("message frequency" in m for m in body["welcome_message"])
    assert any('"Acme Deals"' in m for m in body["confirmation_message"])
    assert not Topic.objects.filter(slug="bare").exists()
    assert marketer_client.post("/api/v1/topics/", COMPLETE, format="json").status_code == 201


def test_strict_refuses_a_patch_that_would_leave_a_text_incomplete(marketer_client, settings):
    assert marketer_client.post("/api/v1/topics/", COMPLETE, format="json").status_code == 201
    settings.CONSENT_TEXT_CHECKS = "strict"
    response = marketer_client.patch("/api/v1/topics/deals/", {"welcome_message": "Welcome!"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["welcome_message"]
    assert any("message frequency" in m for m in response.json()["welcome_message"])
    # renaming the topic changes the brand its texts must name (no CONSENT_BRAND_NAME)
    response = marketer_client.patch("/api/v1/topics/deals/", {"name": "Globex"}, format="json")
    assert response.status_code == 400
    assert {"consent_text", "confirmation_message"} <= set(response.json())
    assert Topic.objects.get(slug="deals").current_text.version == 1
    ok = marketer_client.patch("/api/v1/topics/deals/", {"help_message": "Acme Deals: call 555."}, format="json")
    assert ok.status_code == 200 and ok.json()["text_version"] == 2


def test_an_unknown_setting_stops_the_process_at_start():
    result = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings.test'; django.setup()"],
        env={**os.environ, "CONSENT_TEXT_CHECKS": "loose"}, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "CONSENT_TEXT_CHECKS must be warn or strict, not 'loose'" in result.stderr


# --- the admin ------------------------------------------------------------------------------


INLINE = {"texts-TOTAL_FORMS": "0", "texts-INITIAL_FORMS": "0"}


def admin_form(**changes):
    return {**BARE, "keywords": "BARE", "consent_ttl_days": "", **INLINE, **changes}


def test_admin_shows_warnings_on_the_list_and_page_and_as_a_message_on_save(admin_client):
    response = admin_client.post("/admin/consent/topic/add/", admin_form(), follow=True)
    assert response.status_code == 200
    topic = Topic.objects.get(slug="bare")
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(n.startswith("welcome_message: Must name the message frequency") for n in notes), notes
    assert any(n.startswith("consent_text: Must name the brand") for n in notes)
    listing = admin_client.get("/admin/consent/topic/").content.decode()
    assert "Text warnings" in listing and "Must name the message frequency" in listing
    page = admin_client.get(f"/admin/consent/topic/{topic.pk}/change/").content.decode()
    assert "Must name" in page and "welcome_message" in page


def test_admin_strict_refuses_with_form_errors(admin_client, settings):
    settings.CONSENT_TEXT_CHECKS = "strict"
    response = admin_client.post("/admin/consent/topic/add/", admin_form())
    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert {"consent_text", "confirmation_message", "welcome_message"} <= set(errors)
    assert not Topic.objects.filter(slug="bare").exists()
    ok = admin_client.post("/admin/consent/topic/add/", {**COMPLETE, "keywords": "DEALS", "consent_ttl_days": "", **INLINE})
    assert ok.status_code == 302
    assert Topic.objects.filter(slug="deals").exists()
