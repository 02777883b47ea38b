"""Contacts import (CSV): preview, row-level errors, summary; never reactivates a revoked consent or an
erased or suppressed number."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from consent import imports, services
from consent.erasure import contact_erase
from consent.models import Consent, ConsentEvent, ConsentStatus, Contact, Source

pytestmark = pytest.mark.django_db

RECENT = (timezone.now() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")  # inside the topic's 365 days
GOOD = (
    "phone,first_name,topic,channel,confirmed_at,evidence_ip,evidence_page_url,source_detail\n"
    f"+14155550101,Ada,promo,sms,{RECENT},192.0.2.1,https://old.example/form,legacy crm\n"
    "+14155550102,Bob,,,,,,\n"
)


def test_preview_writes_nothing_and_says_what_the_import_will_do(topic):
    summary = imports.contacts_import(data=GOOD, actor="user:a", commit=False)
    assert summary["committed"] is False and summary["rows"] == 2 and summary["contacts_created"] == 2
    assert summary["consents"]["imported"] == 1 and summary["errors"] == []
    assert [r["outcome"] for r in summary["results"]] == ["contact created; consent promo/sms imported", "contact created"]
    assert not Contact.objects.exists() and not ConsentEvent.objects.exists()


def test_import_creates_contacts_with_attributes_and_the_proof_with_its_evidence(topic):
    summary = imports.contacts_import(data=GOOD, actor="user:a", commit=True)
    assert summary["committed"] is True and summary["contacts_created"] == 2
    ada = Contact.objects.get(phone="+14155550101")
    assert ada.attributes == {"first_name": "Ada"}
    consent = Consent.objects.get(contact=ada)
    assert consent.status == ConsentStatus.ACTIVE and consent.source == Source.IMPORT
    event = ada.events.get(kind="imported")
    assert event.evidence["ip"] == "192.0.2.1" and event.evidence["source_detail"] == "legacy crm"
    assert event.evidence["import_batch"] == summary["consents"]["batch"]
    assert not Consent.objects.filter(contact__phone="+14155550102").exists()


def test_rows_with_errors_are_reported_by_line_and_not_imported(topic):
    data = ("phone,topic,confirmed_at,evidence_ip\n"
            "12,promo,2025-01-01,192.0.2.1\n"
            "+14155550103,nope,2025-01-01,192.0.2.1\n"
            "+14155550104,promo,,192.0.2.1\n"
            "+14155550105,promo,2025-01-01,\n"
            "+14155550106,promo,2999-01-01,192.0.2.1\n"
            "+14155550107,promo,2025-01-01,192.0.2.1\n")
    summary = imports.contacts_import(data=data, actor="user:a", commit=True)
    errors = {row["line"]: set(row["errors"]) for row in summary["errors"]}
    assert errors == {2: {"phone"}, 3: {"topic"}, 4: {"confirmed_at"}, 5: {"evidence"}, 6: {"confirmed_at"}}
    assert list(Contact.objects.values_list("phone", flat=True)) == ["+14155550107"]
    assert summary["consents"]["imported"] == 1


def test_a_proof_older_than_the_topics_lifetime_lands_expired(topic):
    data = "phone,topic,confirmed_at,evidence_ip\n+14155550101,promo,2020-01-01,192.0.2.1\n"
    summary = imports.contacts_import(data=data, actor="user:a", commit=True)
    assert summary["consents"]["expired"] == 1 and Consent.objects.get().status == ConsentStatus.EXPIRED


def test_an_import_never_reactivates_a_revoked_consent(topic):
    services.optin_request(phone="+14155550101", topic=topic, channel="sms", source=Source.API, evidence={"ip": "x"})
    contact = Contact.objects.get()
    services.consent_revoke(contact=contact, channel="sms", source=Source.SMS_KEYWORD)
    summary = imports.contacts_import(data=GOOD, actor="user:a", commit=True)
    assert Consent.objects.get(contact=contact).status == ConsentStatus.REVOKED
    assert summary["consents"]["imported"] == 0 and summary["consents"]["skipped"] == 1
    assert "consent not imported" in summary["results"][0]["outcome"]


def test_an_erased_or_suppressed_number_is_never_touched(topic):
    erased = services.contact_get_or_create(phone="+14155550101")
    contact_erase(contact=erased, actor="user:a")
    suppressed = services.contact_get_or_create(phone="+14155550102")
    services.contact_suppress(contact=suppressed, reason="invalid_number", source=Source.PROVIDER)
    summary = imports.contacts_import(data=GOOD, actor="user:a", commit=True)
    assert summary["skipped"] == 2 and summary["contacts_created"] == 0
    assert not Consent.objects.exists()
    suppressed.refresh_from_db()
    assert suppressed.attributes == {}
    assert Contact.objects.filter(phone="+14155550101").count() == 0


@pytest.mark.parametrize("data, message", [
    (b"", "empty"), (b"name\nx\n", "phone"), (b"\xff\xfe", "UTF-8"), (b"phone,phone\n1,2\n", "same name"),
    (b"phone,bad name\n+14155550101,x\n", "Column names"), (b"phone\n\x00\n", "NUL"),
])
def test_an_unreadable_file_is_refused_whole(data, message):
    with pytest.raises(imports.ImportFileError, match=message):
        imports.contacts_import(data=data, actor="user:a", commit=False)


def test_the_api_previews_and_imports_and_is_for_admins(admin_client_api, marketer_client, topic):
    upload = lambda: io.BytesIO(GOOD.encode())  # noqa: E731
    response = marketer_client.post("/api/v1/contacts/import/", {"file": upload()}, format="multipart")
    assert response.status_code == 403
    response = admin_client_api.post("/api/v1/contacts/import/", {"file": upload(), "dry_run": "true"}, format="multipart")
    assert response.status_code == 200 and response.json()["committed"] is False
    assert not Contact.objects.exists()
    response = admin_client_api.post("/api/v1/contacts/import/", {"file": upload()}, format="multipart")
    assert response.status_code == 200 and response.json()["contacts_created"] == 2
    assert admin_client_api.post("/api/v1/contacts/import/", {"file": io.BytesIO(b"\xff")},
                                 format="multipart").status_code == 400
    assert admin_client_api.post("/api/v1/contacts/import/", {}, format="multipart").status_code == 400


def test_the_admin_page_previews_then_imports(client, make_user, topic):
    user, _ = make_user("admin")
    client.force_login(get_user_model().objects.get(pk=user.pk))
    page = client.post("/workspace/contacts/import/", {"file": io.BytesIO(GOOD.encode())})
    html = page.content.decode()
    assert page.status_code == 200 and "Preview: nothing is written yet" in html and "import-commit" in html
    assert not Contact.objects.exists()
    page = client.post("/workspace/contacts/import/", {"csv_text": GOOD, "commit": "True"})
    assert "Imported" in page.content.decode() and Contact.objects.count() == 2


def test_the_admin_page_is_for_admins_only(client, make_user):
    user, _ = make_user("marketer")
    client.force_login(get_user_model().objects.get(pk=user.pk))
    assert client.get("/workspace/contacts/import/").status_code == 403
    client.logout()
    assert client.get("/workspace/contacts/import/").status_code == 302  # to the admin's login
