"""Edges schemathesis found: JSON 404 for unrouted API paths, strict pagination, the schema itself."""

import pytest

pytestmark = pytest.mark.django_db


def test_schema_is_served_without_error(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/broadcasts/{id}/pause/" in paths  # the view that used to break generation


@pytest.mark.parametrize("path", ["/api/v1/broadcasts/abc/", "/api/v1/topics/%C3%A9/texts/", "/api/v1/nothing/",
                                  "/webhooks/nothing/"])
def test_unrouted_api_paths_answer_json_404(admin_client_api, path):
    response = admin_client_api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_other_paths_keep_the_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("query,field", [("limit=abc", "limit"), ("limit=0", "limit"), ("limit=-1", "limit"),
                                         ("offset=1.5", "offset"), ("offset=-3", "offset"), ("offset=true", "offset")])
def test_malformed_pagination_is_400(auditor_client, topic, query, field):
    for path in ("/api/v1/contacts/", "/api/v1/consents/", "/api/v1/broadcasts/"):
        response = auditor_client.get(f"{path}?{query}")
        assert response.status_code == 400, path
        assert field in response.json()


def test_wellformed_pagination_still_works(auditor_client, topic):
    response = auditor_client.get("/api/v1/contacts/?limit=5&offset=0")
    assert response.status_code == 200
    assert set(response.json()) >= {"count", "next", "previous", "results"}


@pytest.mark.parametrize("page_size", ["x", "0", "-2"])
def test_malformed_cursor_page_size_is_400(auditor_client, page_size):
    assert auditor_client.get(f"/api/v1/audit/events/?page_size={page_size}").status_code == 400


@pytest.fixture
def three_contacts(db):
    from consent import services

    return [services.contact_get_or_create(phone=f"+1415555010{i}") for i in range(3)]


@pytest.mark.parametrize("limit", ["1000000000", "9" * 20, "9" * 40])
def test_a_huge_limit_is_clamped_to_the_maximum_page(auditor_client, three_contacts, settings, limit):
    settings.API_MAX_PAGE_SIZE = 2
    for path in ("/api/v1/contacts/", "/api/v1/contacts/?offset=" + "9" * 20):
        response = auditor_client.get(f"{path}{'&' if '?' in path else '?'}limit={limit}")
        assert response.status_code == 200, response.content
        assert response.json()["count"] == 3
    first = auditor_client.get(f"/api/v1/contacts/?limit={limit}").json()
    assert len(first["results"]) == 2 and "limit=2" in first["next"]


def test_the_maximum_page_defaults_to_1000(auditor_client, three_contacts):
    response = auditor_client.get("/api/v1/contacts/?limit=" + "9" * 20)
    assert response.status_code == 200 and len(response.json()["results"]) == 3
    from config.pagination import LimitOffsetPagination

    assert LimitOffsetPagination().max_limit == 1000


def test_a_huge_cursor_page_size_is_clamped(auditor_client, topic, settings):
    from consent import services
    from consent.models import Source

    for i in range(3):
        services.optin_request(phone=f"+1415555010{i}", topic=topic, channel="sms", source=Source.API, evidence={})
    settings.API_MAX_PAGE_SIZE = 2
    response = auditor_client.get(f"/api/v1/audit/events/?page_size={'9' * 20}")
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 2 and response.json()["next"]


@pytest.mark.parametrize("raw", ["p=abc", "p=1.5", "r=1&p=abc", "p=" + "9" * 5000, "o=-5", "%%%garbage"])
def test_a_forged_cursor_is_400(auditor_client, raw):
    import base64

    cursor = raw if raw.startswith("%") else base64.b64encode(raw.encode()).decode()
    response = auditor_client.get(f"/api/v1/audit/events/?cursor={cursor}")
    assert response.status_code == 400, response.content
    assert response.json() == {"cursor": "Invalid cursor"}


def test_export_with_an_empty_or_unknown_format_is_400(auditor_client):
    assert auditor_client.get("/api/v1/audit/export/?format=").status_code == 400
    assert auditor_client.get("/api/v1/audit/export/?format=xml").status_code == 400


# PostgreSQL refuses NUL in text and jsonb: found by schemathesis as a 500 on POST broadcasts/.
NUL_BODIES = [
    ("/api/v1/broadcasts/", {"name": "x", "topic": "pro\u0000mo", "channel": "sms", "body": "Hi"}),
    ("/api/v1/topics/", {"slug": "s", "name": "N\u0000", "consent_text": "c", "confirmation_message": "m",
                         "help_message": "h"}),
    ("/api/v1/optins/", {"phone": "+14155550100", "topic": "promo", "channel": "sms",
                         "evidence": {"user_agent": "UA\u0000"}}),
    ("/api/v1/contacts/", {"phone": "+14155550100", "attributes": {"first\u0000name": "x"}}),
]


@pytest.mark.parametrize("path,body", NUL_BODIES, ids=[p for p, _ in NUL_BODIES])
def test_nul_in_a_json_body_is_400(admin_client_api, topic, path, body):
    response = admin_client_api.post(path, body, format="json")
    assert response.status_code == 400, response.content


@pytest.mark.parametrize("path", ["/api/v1/consents/?topic=pro%00mo", "/api/v1/contacts/?phone=%2B1%00",
                                  "/api/v1/audit/events/?kind=%00", "/api/v1/contacts/%2B1415%00/",
                                  "/api/v1/broadcasts/?status=dr%00aft"])
def test_nul_in_the_url_is_400(admin_client_api, topic, path):
    response = admin_client_api.get(path)
    assert response.status_code == 400
    assert response.json() == {"detail": "Text may not contain the NUL character (\\u0000)."}


def test_nul_in_a_form_body_is_400(admin_client_api, topic):
    response = admin_client_api.post("/api/v1/optins/", "phone=%2B14155550100&topic=pro%00mo&channel=sms",
                                     content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


@pytest.mark.parametrize("query,status", [("", 200), ("?resume=true", 200), ("?resume=0", 200), ("?resume=", 400),
                                          ("?resume=maybe", 400)])
def test_verify_resume_flag_is_a_real_boolean(auditor_client, query, status):
    assert auditor_client.get(f"/api/v1/audit/verify/{query}").status_code == status


# "[" * 1000 overflowed the JSON decoder's stack: a RecursionError, a 500 on every DRF endpoint.
NESTED_BODIES = {
    "unclosed 1000": "[" * 1000,
    "closed 1000": "[" * 1000 + "]" * 1000,
    "closed 100000": "[" * 100_000 + "]" * 100_000,
    "in a field": '{"token": ' + "{\"a\": " * 600 + "1" + "}" * 600 + "}",
    "decodable but 40 deep": '{"token": ' + "[" * 40 + "]" * 40 + "}",
}


@pytest.mark.parametrize("body", NESTED_BODIES.values(), ids=NESTED_BODIES.keys())
def test_json_nested_too_deep_is_400_anonymous(api_client, body):
    response = api_client.post("/api/v1/optins/confirm/", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "JSON body nested more than 32 levels deep."}


@pytest.mark.parametrize("path", ["/api/v1/optins/", "/api/v1/broadcasts/", "/api/v1/consents/import/"])
def test_json_nested_too_deep_is_400_authenticated(admin_client_api, topic, path):
    for body in NESTED_BODIES.values():
        response = admin_client_api.post(path, data=body, content_type="application/json")
        assert response.status_code == 400, (path, body[:20])
        assert "nested more than 32 levels" in response.json()["detail"]


def test_ordinary_nesting_is_still_accepted(admin_client_api, topic):
    evidence = {"ip": "192.0.2.1", "page_url": "https://acme.example/join", "user_agent": "UA"}
    response = admin_client_api.post("/api/v1/optins/", {"phone": "+14155550100", "topic": "promo", "channel": "sms",
                                                        "evidence": evidence}, format="json")
    assert response.status_code == 201, response.content
