"""The consent HTTP API: contract shapes, roles on every endpoint, and bad input as 400s."""

from datetime import timedelta

import pytest

from consent.models import Consent, ConsentEvent, Contact, EventKind, Message, Topic

pytestmark = pytest.mark.django_db

OPTIN = {"phone": "+14155550123", "topic": "promo", "channel": "sms",
         "evidence": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "page_url": "https://acme.example/join"}}
NEW_TOPIC = {"slug": "news", "name": "News", "keywords": ["news"], "consent_text": "I agree to news.",
             "confirmation_message": "Reply YES for news.", "help_message": "News help.", "consent_ttl_days": 30}

# endpoint, method, body → expected status per role (anonymous, auditor, marketer, admin)
MATRIX = [
    ("/api/v1/topics/", "get", None, (401, 200, 200, 200)),
    ("/api/v1/topics/", "post", NEW_TOPIC, (401, 403, 201, 201)),
    ("/api/v1/topics/promo/", "get", None, (401, 200, 200, 200)),
    ("/api/v1/topics/promo/", "patch", {"name": "Renamed"}, (401, 403, 200, 200)),
    ("/api/v1/topics/promo/texts/", "get", None, (401, 200, 200, 200)),
    ("/api/v1/optins/", "post", OPTIN, (401, 403, 201, 201)),
    ("/api/v1/consents/", "get", None, (401, 200, 200, 200)),
    ("/api/v1/consents/revoke/", "post", {"phone": "+14155550100", "channel": "sms"}, (401, 403, 200, 200)),
    ("/api/v1/consents/import/", "post", {"records": [{"phone": "+14155550199", "topic": "promo", "channel": "sms",
                                                       "confirmed_at": "2026-01-01T00:00:00Z",
                                                       "evidence": {"form": "legacy"}}]}, (401, 403, 403, 200)),
    ("/api/v1/contacts/", "get", None, (401, 200, 200, 200)),
    ("/api/v1/contacts/", "post", {"phone": "+14155550142"}, (401, 403, 201, 201)),
    ("/api/v1/contacts/+14155550100/", "get", None, (401, 200, 200, 200)),
    ("/api/v1/contacts/+14155550100/", "patch", {"attributes": {"first_name": "Ada"}}, (401, 403, 200, 200)),
]


@pytest.fixture
def existing_contact(topic):
    from consent import services

    return services.contact_get_or_create(phone="+14155550100")


@pytest.mark.parametrize("path,method,body,expected", MATRIX, ids=[f"{m} {p}" for p, m, _, _ in MATRIX])
@pytest.mark.parametrize("role_index,role", list(enumerate([None, "auditor", "marketer", "admin"])))
def test_roles_on_every_endpoint(role_client, existing_contact, path, method, body, expected, role_index, role):
    client = role_client(role)
    response = getattr(client, method)(path, body, format="json")
    assert response.status_code == expected[role_index], response.content


def test_bad_token_is_401(api_client, topic):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert api_client.get("/api/v1/topics/").status_code == 401


def test_create_topic_and_read_versions(marketer_client, topic):
    response = marketer_client.post("/api/v1/topics/", NEW_TOPIC, format="json")
    assert response.status_code == 201
    assert response.json()["keywords"] == ["NEWS"]
    assert response.json()["text_version"] == 1
    response = marketer_client.patch("/api/v1/topics/news/", {"consent_text": "New words."}, format="json")
    assert response.json()["text_version"] == 2
    versions = marketer_client.get("/api/v1/topics/news/texts/").json()
    assert [v["consent_text"] for v in versions] == ["I agree to news.", "New words."]
    assert all(len(v["sha256"]) == 64 for v in versions)


def test_optin_then_confirm_then_contact(marketer_client, api_client, topic, run_on_commit, outbox):
    with run_on_commit():
        response = marketer_client.post("/api/v1/optins/", OPTIN, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending" and body["phone"] == "+14155550123" and body["prompt_sent"] is True
    assert set(body) == {"phone", "topic", "channel", "status", "requested_at", "confirm_by", "prompt_sent"}
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    assert "/optin/confirm/[redacted]/" in prompt.body
    token = outbox.token()  # only the person's handset (the provider) got it
    requested = ConsentEvent.objects.get(kind=EventKind.REQUESTED)
    assert requested.evidence["ip"] == "203.0.113.7" and requested.evidence["page_url"].startswith("https://")
    response = api_client.post("/api/v1/optins/confirm/", {"token": token}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"
    assert api_client.post("/api/v1/optins/confirm/", {"token": token}, format="json").status_code == 400
    for path in ("/api/v1/contacts/+14155550123/", "/api/v1/contacts/%2B14155550123/", "/api/v1/contacts/14155550123/"):
        detail = marketer_client.get(path)
        assert detail.status_code == 200, path
    contact = detail.json()
    assert contact["country"] == "US" and contact["timezone"].startswith("America/")
    assert contact["consents"][0]["status"] == "active"
    assert {"topic", "channel", "status", "requested_at", "confirmed_at", "expires_at", "revoked_at"} <= set(contact["consents"][0])


def test_revoke_returns_revoked(marketer_client, topic):
    marketer_client.post("/api/v1/optins/", OPTIN, format="json")
    response = marketer_client.post("/api/v1/consents/revoke/", {"phone": "+14155550123", "channel": "sms",
                                                                 "topic": "promo", "reason": "asked by phone"},
                                    format="json")
    assert response.status_code == 200
    assert [c["status"] for c in response.json()] == ["revoked"]
    event = ConsentEvent.objects.get(kind=EventKind.REVOKED)
    assert event.evidence["reason"] == "asked by phone" and event.actor == "user:marketer-user"


def test_import_lands_expired_when_older_than_lifetime(admin_client_api, topic, now):
    records = [{"phone": "+33612345678", "topic": "promo", "channel": "sms",
                "confirmed_at": (now - timedelta(days=400)).isoformat(), "evidence": {"form": "legacy"},
                "source_detail": "old CRM"}]
    response = admin_client_api.post("/api/v1/consents/import/", {"records": records}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["expired"] == 1
    assert Consent.objects.get().status == "expired"


def test_contact_filters(marketer_client, topic):
    marketer_client.post("/api/v1/optins/", OPTIN, format="json")
    marketer_client.post("/api/v1/contacts/", {"phone": "+14155550142"}, format="json")
    assert marketer_client.get("/api/v1/contacts/?status=pending").json()["count"] == 1
    assert marketer_client.get("/api/v1/contacts/?topic=promo").json()["count"] == 1
    assert marketer_client.get("/api/v1/contacts/").json()["count"] == 2
    assert marketer_client.get("/api/v1/contacts/?phone=%2B14155550142").json()["count"] == 1


BAD_INPUT = [
    ("/api/v1/optins/", {**OPTIN, "phone": "hello"}, "phone"),
    ("/api/v1/optins/", {**OPTIN, "phone": "+1415555"}, "phone"),
    ("/api/v1/optins/", {**OPTIN, "phone": "+999123456789"}, "phone"),
    ("/api/v1/optins/", {**OPTIN, "phone": 12}, "phone"),
    ("/api/v1/optins/", {**OPTIN, "topic": "nope"}, "topic"),
    ("/api/v1/optins/", {**OPTIN, "topic": ["promo"]}, "topic"),
    ("/api/v1/optins/", {**OPTIN, "channel": "fax"}, "channel"),
    ("/api/v1/optins/", {**OPTIN, "evidence": {"ip": "not-an-ip"}}, "evidence"),
    ("/api/v1/optins/", {**OPTIN, "evidence": "x"}, "evidence"),
    ("/api/v1/optins/", {"topic": "promo", "channel": "sms"}, "phone"),
    ("/api/v1/topics/", {**NEW_TOPIC, "slug": "promo"}, "slug"),
    ("/api/v1/topics/", {**NEW_TOPIC, "keywords": ["STOP"]}, "keywords"),
    ("/api/v1/topics/", {**NEW_TOPIC, "keywords": ["PROMO"]}, "keywords"),
    ("/api/v1/topics/", {**NEW_TOPIC, "consent_ttl_days": -1}, "consent_ttl_days"),
    ("/api/v1/topics/", {**NEW_TOPIC, "slug": "bad slug!"}, "slug"),
    ("/api/v1/consents/revoke/", {"phone": "+14155550123", "channel": "pigeon"}, "channel"),
    ("/api/v1/consents/import/", {"records": [{"phone": "+14155550199", "topic": "promo", "channel": "sms",
                                              "confirmed_at": "2026-01-01T00:00:00Z", "evidence": {}}]}, "records"),
    ("/api/v1/consents/import/", {"records": [{"phone": "+14155550199", "topic": "promo", "channel": "sms",
                                              "confirmed_at": "2026-01-01T00:00:00Z"}]}, "records"),
    ("/api/v1/consents/import/", {"records": "x"}, "records"),
    ("/api/v1/consents/import/", {"records": [{"phone": "+14155550199", "topic": "promo", "channel": "sms",
                                              "confirmed_at": "2099-01-01T00:00:00Z", "evidence": {"a": 1}}]},
     "records[0].confirmed_at"),
    ("/api/v1/contacts/", {"phone": "+14155550142", "timezone": "Mars/Olympus"}, "timezone"),
    ("/api/v1/optins/confirm/", {"token": ""}, "token"),
    ("/api/v1/optins/confirm/", {"token": "forged:token:value"}, "token"),
]


@pytest.mark.parametrize("path,body,field", BAD_INPUT)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(admin_client_api, topic, path, body, field):
    events, contacts = ConsentEvent.objects.count(), Contact.objects.count()
    response = admin_client_api.post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert ConsentEvent.objects.count() == events and Contact.objects.count() == contacts


def test_malformed_json_is_400(admin_client_api, topic):
    response = admin_client_api.post("/api/v1/optins/", data="{not json", content_type="application/json")
    assert response.status_code == 400


def test_unknown_contact_and_topic_are_404(admin_client_api, topic):
    assert admin_client_api.get("/api/v1/contacts/+14155550999/").status_code == 404
    assert admin_client_api.get("/api/v1/contacts/garbage/").status_code == 404
    assert admin_client_api.get("/api/v1/topics/nope/").status_code == 404
    assert admin_client_api.post("/api/v1/consents/revoke/", {"phone": "+14155550999", "channel": "sms"},
                                 format="json").status_code == 404


def test_bad_query_filters_are_400(admin_client_api, topic):
    assert admin_client_api.get("/api/v1/contacts/?phone=abc").status_code == 400
    assert admin_client_api.get("/api/v1/contacts/?status=happy").status_code == 400
    assert admin_client_api.get("/api/v1/consents/?status=happy").status_code == 400


def test_schema_and_docs_and_health(api_client, admin_client_api):
    assert admin_client_api.get("/api/schema/").status_code == 200
    assert api_client.get("/api/docs/").status_code == 200
    assert api_client.get("/healthz/").json() == {"status": "ok"}
    ready = api_client.get("/readyz/")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"



def test_readyz_is_503_when_the_broker_is_unreachable(api_client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = api_client.get("/readyz/")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "unreachable"}


def test_messages_list_is_the_customer_care_queue(marketer_client, topic, run_on_commit):
    from consent.models import Contact

    with run_on_commit():
        marketer_client.post("/api/v1/optins/", OPTIN, format="json")
    contact = Contact.objects.get()
    Message.objects.create(contact=contact, channel="sms", direction="in", kind="inbound", body="Is the red one back?",
                           status="received", provider_message_id="SMcare1")
    care = marketer_client.get("/api/v1/messages/?direction=in&kind=inbound").json()
    assert care["count"] == 1 and care["results"][0]["body"] == "Is the red one back?"
    assert care["results"][0]["phone"] == "+14155550123"
    everything = marketer_client.get("/api/v1/messages/?phone=%2B14155550123").json()
    assert {m["kind"] for m in everything["results"]} == {"inbound", "confirmation_prompt"}
    assert marketer_client.get("/api/v1/messages/?direction=sideways").status_code == 400


def test_openapi_schema_generates_without_warnings():
    import io

    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out, stderr=err)
    assert err.getvalue() == ""
    assert "/api/v1/optins/confirm/" in out.getvalue()


TOPIC_BODY = {"slug": "deals", "name": "Deals", "consent_text": "I agree to deals.", "confirmation_message": "Reply YES.",
              "help_message": "Deals help."}


@pytest.mark.parametrize("keywords", [[f"K{i}" for i in range(21)], ["X" * 33]], ids=["21 keywords", "33 characters"])
def test_topic_keyword_caps_are_400_on_create_and_update(marketer_client, topic, keywords):
    response = marketer_client.post("/api/v1/topics/", {**TOPIC_BODY, "keywords": keywords}, format="json")
    assert response.status_code == 400 and "keywords" in response.json()
    response = marketer_client.patch("/api/v1/topics/promo/", {"keywords": keywords}, format="json")
    assert response.status_code == 400 and "keywords" in response.json()
    assert Topic.objects.get(slug="promo").keywords == ["PROMO"]


def test_topic_keyword_caps_hold_for_every_caller_of_the_service(topic):
    from django.core.exceptions import ValidationError

    from consent import services

    with pytest.raises(ValidationError, match="At most 20 keywords"):
        services.topic_update(topic=topic, keywords=[f"K{i}" for i in range(21)])
    assert services.topic_update(topic=topic, keywords=[f"k{i}" for i in range(20)] + ["K1"]).keywords == [
        f"K{i}" for i in range(20)]


# --- PATCH contacts/{phone}/: attributes ----------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/contacts/+14155550100/", "/api/v1/contacts/%2B14155550100/",
                                  "/api/v1/contacts/14155550100/"])
def test_patch_merges_attributes_and_null_removes(marketer_client, existing_contact, path):
    existing_contact.attributes = {"first_name": "Ada", "city": "Lyon", "vip": False}
    existing_contact.save(update_fields=["attributes"])
    response = marketer_client.patch(path, {"attributes": {"first_name": "Zoé", "city": None, "visits": 3,
                                                           "gone": None}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["attributes"] == {"first_name": "Zoé", "vip": False, "visits": 3}
    existing_contact.refresh_from_db()
    assert existing_contact.attributes == {"first_name": "Zoé", "vip": False, "visits": 3}
    assert response.json()["phone"] == "+14155550100" and "consents" in response.json()


@pytest.mark.parametrize("body, says", [
    ({}, "required"),
    ({"attributes": None}, ""),
    ({"attributes": ["first_name"]}, "JSON object"),
    ({"attributes": "first_name=Ada"}, "JSON object"),
    ({"attributes": {"plan": {"tier": 2}}}, "no nested"),
    ({"attributes": {"tags": ["a"]}}, "no nested"),
    ({"attributes": {"first name": "Ada"}}, "a name is"),
    ({"attributes": {"1st": "Ada"}}, "a name is"),
    ({"attributes": {"x" * 65: "Ada"}}, "a name is"),
    ({"attributes": {"bio": "x" * 501}}, "at most 500"),
    ({"attributes": {"big": 2**60}}, "2^53"),
    ({"attributes": {f"a{i}": i for i in range(51)}}, "At most 50"),
])
def test_patch_with_bad_attributes_is_a_400_naming_the_field(marketer_client, existing_contact, body, says):
    response = marketer_client.patch("/api/v1/contacts/+14155550100/", body, format="json")
    assert response.status_code == 400, response.content
    assert "attributes" in response.json()
    assert says in " ".join(response.json()["attributes"])
    existing_contact.refresh_from_db()
    assert existing_contact.attributes == {}


def test_patch_may_not_grow_a_contact_past_the_attribute_cap(marketer_client, existing_contact):
    existing_contact.attributes = {f"a{i}": i for i in range(45)}
    existing_contact.save(update_fields=["attributes"])
    response = marketer_client.patch("/api/v1/contacts/+14155550100/",
                                     {"attributes": {f"b{i}": i for i in range(6)}}, format="json")
    assert response.status_code == 400 and "at most 50" in response.json()["attributes"][0]
    replaced = marketer_client.patch("/api/v1/contacts/+14155550100/",
                                     {"attributes": {**{f"a{i}": None for i in range(6)}, **{f"b{i}": i for i in range(6)}}},
                                     format="json")
    assert replaced.status_code == 200 and len(replaced.json()["attributes"]) == 45


@pytest.mark.parametrize("path", ["/api/v1/contacts/+14155550999/", "/api/v1/contacts/garbage/"])
def test_patch_of_an_unknown_contact_is_404(marketer_client, existing_contact, path):
    assert marketer_client.patch(path, {"attributes": {"a": 1}}, format="json").status_code == 404


def test_post_contacts_validates_attributes_too(marketer_client, topic):
    response = marketer_client.post("/api/v1/contacts/", {"phone": "+14155550142", "attributes": {"plan": {"tier": 2}}},
                                    format="json")
    assert response.status_code == 400 and "attributes" in response.json()
    response = marketer_client.post("/api/v1/contacts/", {"phone": "+14155550142", "attributes": {"first_name": None}},
                                    format="json")
    assert response.status_code == 400 and "attributes" in response.json()
