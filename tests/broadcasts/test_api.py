"""Broadcast API: the role matrix on every endpoint, bad input as 400s, and the lifecycle actions."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from broadcasts import services
from broadcasts.models import Broadcast, BroadcastStatus

pytestmark = pytest.mark.django_db

SMS = {"name": "Spring sale", "topic": "promo", "channel": "sms", "body": "Hi {{ first_name }}, 20% off. STOP to opt out."}
WHATSAPP = {"name": "Spring sale WA", "topic": "promo", "channel": "whatsapp",
            "template": {"name": "spring_sale", "language": "en_US",
                         "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{ first_name }}"}]}]}}


def make_broadcast(topic, **changes):
    fields = {"name": "b", "topic": topic, "channel": "sms", "body": "Sale! STOP to opt out.", "respect_quiet_hours": False}
    fields.update(changes)
    return services.broadcast_create(**fields)


# --- role matrix ----------------------------------------------------------------------------

READS = ["", "{id}/", "{id}/deliveries/", "{id}/audience/"]
WRITES = [("", SMS), ("{id}/schedule/", {}), ("{id}/pause/", {}), ("{id}/resume/", {}), ("{id}/cancel/", {}),
          ("{id}/test/", {"phone": "+12125550000"})]


@pytest.mark.parametrize("role, allowed", [("admin", True), ("marketer", True), ("auditor", True), (None, False)])
@pytest.mark.parametrize("path", READS)
def test_reads_by_role(role_client, topic, role, allowed, path):
    broadcast = make_broadcast(topic)
    response = role_client(role).get(f"/api/v1/broadcasts/{path.format(id=broadcast.pk)}")
    assert response.status_code == (200 if allowed else 401), response.content


@pytest.mark.parametrize("role, expected", [("auditor", 403), (None, 401)])
@pytest.mark.parametrize("path, body", WRITES)
def test_writes_refused_for_auditor_and_anonymous(role_client, topic, role, expected, path, body):
    broadcast = make_broadcast(topic)
    response = role_client(role).post(f"/api/v1/broadcasts/{path.format(id=broadcast.pk)}", body, format="json")
    assert response.status_code == expected
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.DRAFT
    assert Broadcast.objects.count() == 1


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_writers_run_the_whole_lifecycle(role_client, topic, consented, role, run_on_commit):
    consented(3, topic, attributes={"first_name": "Ada"})
    client = role_client(role)
    created = client.post("/api/v1/broadcasts/", {**SMS, "send_at": (timezone.now() + timedelta(hours=1)).isoformat()},
                          format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "draft" and body["topic"] == "promo"
    assert set(body["stats"]) >= {"audience", "queued", "sent", "delivered", "failed", "skipped", "deferred", "unknown"}
    pk = body["id"]
    assert client.get(f"/api/v1/broadcasts/{pk}/audience/").json()["audience"] == 3
    assert client.post(f"/api/v1/broadcasts/{pk}/schedule/", {}, format="json").json()["status"] == "scheduled"
    assert client.post(f"/api/v1/broadcasts/{pk}/pause/", {}, format="json").json()["status"] == "paused"
    assert client.post(f"/api/v1/broadcasts/{pk}/resume/", {}, format="json").json()["status"] == "scheduled"
    cancelled = client.post(f"/api/v1/broadcasts/{pk}/cancel/", {"reason": "wrong price"}, format="json").json()
    assert cancelled["status"] == "cancelled" and cancelled["status_reason"] == "wrong price"
    listed = client.get("/api/v1/broadcasts/?status=cancelled").json()
    assert [b["id"] for b in listed["results"]] == [pk]


def test_whatsapp_template_broadcast_created(marketer_client, topic):
    response = marketer_client.post("/api/v1/broadcasts/", WHATSAPP, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["template"]["name"] == "spring_sale"


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, field", [
    ({"body": "Hi {{ shoe_size }}!"}, "body"),
    ({"body": "Hi {{ first name }}!"}, "body"),
    ({"body": ""}, "body"),
    ({"body": "x" * 1700}, "body"),
    ({"topic": "nope"}, "topic"),
    ({"topic": 5}, "topic"),
    ({"channel": "fax"}, "channel"),
    ({"name": ""}, "name"),
    ({"send_at": "yesterday"}, "send_at"),
    ({"send_at": "2001-01-01T00:00:00Z"}, "send_at"),
    ({"local_time": "25:00"}, "local_time"),
    ({"frequency_cap": 0}, "frequency_cap"),
    ({"template": {"name": "x", "language": "en_US"}}, "template"),
    ({"respect_quiet_hours": "maybe"}, "respect_quiet_hours"),
])
def test_bad_sms_input_is_a_400_naming_the_field(marketer_client, topic, changes, field):
    response = marketer_client.post("/api/v1/broadcasts/", {**SMS, **changes}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert Broadcast.objects.count() == 0


def test_unknown_placeholder_is_named(marketer_client, topic):
    response = marketer_client.post("/api/v1/broadcasts/", {**SMS, "body": "Hi {{ shoe_size }} {{ first_name }}"}, format="json")
    assert response.status_code == 400
    assert "shoe_size" in response.json()["body"][0]
    assert "first_name" not in response.json()["body"][0].split("Known")[0]


def test_placeholder_known_from_audience_attributes(marketer_client, topic, consented):
    consented(1, topic, attributes={"city": "Lyon"})
    response = marketer_client.post("/api/v1/broadcasts/", {**SMS, "body": "News from {{ city }}"}, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("changes, field", [
    ({"template": None}, "template"),
    ({"body": "plain text"}, "body"),
    ({"template": {"name": "Bad Name!", "language": "en_US"}}, "template.name"),
    ({"template": {"name": "ok", "language": "english"}}, "template.language"),
    ({"template": {"name": "ok", "language": "en_US", "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{ nope }}"}]}]}}, "template"),
    ({"template": {"name": "ok", "language": "en_US", "components": "body"}}, "template"),
])
def test_bad_whatsapp_input_is_a_400(marketer_client, topic, changes, field):
    payload = {**WHATSAPP, **changes}
    if payload.get("template") is None:
        payload.pop("template")
    response = marketer_client.post("/api/v1/broadcasts/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_unknown_broadcast_is_404(marketer_client):
    for path in ["999/", "999/deliveries/", "999/audience/", "abc/"]:
        assert marketer_client.get(f"/api/v1/broadcasts/{path}").status_code == 404
    assert marketer_client.post("/api/v1/broadcasts/999/pause/", {}, format="json").status_code == 404


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_impossible_transition_is_a_400(marketer_client, topic, action):
    broadcast = make_broadcast(topic)
    response = marketer_client.post(f"/api/v1/broadcasts/{broadcast.pk}/{action}/", {}, format="json")
    assert response.status_code == 400
    assert "status" in response.json()


def test_schedule_twice_and_cancel_twice_are_400(marketer_client, topic):
    broadcast = make_broadcast(topic, send_at=timezone.now() + timedelta(days=1))
    assert marketer_client.post(f"/api/v1/broadcasts/{broadcast.pk}/schedule/", {}, format="json").status_code == 200
    assert marketer_client.post(f"/api/v1/broadcasts/{broadcast.pk}/schedule/", {}, format="json").status_code == 400
    assert marketer_client.post(f"/api/v1/broadcasts/{broadcast.pk}/cancel/", {}, format="json").status_code == 200
    assert marketer_client.post(f"/api/v1/broadcasts/{broadcast.pk}/cancel/", {}, format="json").status_code == 400


def test_bad_filters_are_400(marketer_client, topic):
    broadcast = make_broadcast(topic)
    assert marketer_client.get("/api/v1/broadcasts/?status=nope").status_code == 400
    assert marketer_client.get(f"/api/v1/broadcasts/{broadcast.pk}/deliveries/?status=nope").status_code == 400


# --- test send ------------------------------------------------------------------------------


def test_test_send_to_a_consented_contact(marketer_client, topic, consented, use_stand_in):
    consented(1, topic, attributes={"first_name": "Ada"})
    broadcast = make_broadcast(topic, body="Hi {{ first_name }}! STOP to opt out.")
    response = marketer_client.post(f"/api/v1/broadcasts/{broadcast.pk}/test/", {"phone": "+12125550000"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["body"] == "Hi Ada! STOP to opt out."
    [sent] = use_stand_in.messages(to="+12125550000")
    assert sent["body"] == "Hi Ada! STOP to opt out."
    assert broadcast.deliveries.count() == 0


@pytest.mark.parametrize("phone", ["+12125550001", "+12125559999", "not a phone"])
def test_test_send_refused_without_current_consent(marketer_client, topic, consented, phone, use_stand_in):
    consented(1, topic)
    other = consented(1, topic, channel="whatsapp", start=1)  # +12125550001 consented on WhatsApp only
    assert other
    broadcast = make_broadcast(topic)
    response = marketer_client.post(f"/api/v1/broadcasts/{broadcast.pk}/test/", {"phone": phone}, format="json")
    assert response.status_code == 400
    assert "phone" in response.json()
    assert use_stand_in.messages() == []


# --- content: linear placeholders, size caps ------------------------------------------------


@pytest.mark.parametrize("payload", [
    {**SMS, "body": "{{" + " " * 1_598},
    {**WHATSAPP, "template": {**WHATSAPP["template"], "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "{{" + " " * 3_000}]}]}},
])
def test_a_hostile_placeholder_is_a_quick_400(marketer_client, topic, payload):
    started = time.perf_counter()
    response = marketer_client.post("/api/v1/broadcasts/", payload, format="json")
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 400, response.content
    field = "body" if payload["channel"] == "sms" else "template"
    assert "Malformed placeholder" in response.json()[field][0]


@pytest.mark.parametrize("template, field", [
    ({**WHATSAPP["template"], "components": [{"type": "body", "parameters": [{"type": "text", "text": "x" * 17_000}]}]},
     "template"),
    ({**WHATSAPP["template"], "components": [{"type": "body", "parameters": [{"type": "text", "text": "x"}] * 51}]},
     "template.components"),
    ({**WHATSAPP["template"], "components": [{"type": "body", "parameters": [[[[[[[[["x"]]]]]]]]]}]}, "template"),
])
def test_templates_over_the_caps_are_a_400_naming_the_field(marketer_client, topic, template, field):
    response = marketer_client.post("/api/v1/broadcasts/", {**WHATSAPP, "template": template}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_the_sms_cap_is_twilios_1600_characters(marketer_client, topic):
    at_cap = marketer_client.post("/api/v1/broadcasts/", {**SMS, "body": "x" * 1_600}, format="json")
    assert at_cap.status_code == 201, at_cap.content
    over = marketer_client.post("/api/v1/broadcasts/", {**SMS, "body": "x" * 1_601}, format="json")
    assert over.status_code == 400 and "1600" in over.json()["body"][0]


def test_a_fallback_placeholder_is_accepted(marketer_client, topic):
    response = marketer_client.post("/api/v1/broadcasts/", {**SMS, "body": 'Hi {{ first_name | "friend" }}!'}, format="json")
    assert response.status_code == 201, response.content


def test_a_placeholder_any_contact_has_is_accepted(marketer_client, topic):
    from consent import services as consent_services

    consent_services.contact_get_or_create(phone="+12125550999", attributes={"shoe_size": 42})  # not in the audience
    response = marketer_client.post("/api/v1/broadcasts/", {**SMS, "body": "Size {{ shoe_size }} in stock"}, format="json")
    assert response.status_code == 201, response.content


# --- audience preview: missing placeholders -------------------------------------------------


def test_audience_preview_counts_who_lacks_each_placeholder(marketer_client, topic, consented):
    consented(2, topic, attributes={"first_name": "Ada", "city": "Lyon"})
    consented(3, topic, attributes={"city": ""}, start=2)
    consented(1, topic, attributes={"first_name": None}, start=5)
    broadcast = make_broadcast(topic, body='Hi {{ first_name }} from {{ city | "your town" }}')
    preview = marketer_client.get(f"/api/v1/broadcasts/{broadcast.pk}/audience/").json()
    assert preview["audience"] == 6
    assert preview["missing_placeholders"] == {"first_name": 4}
    assert preview["fallbacks_used"] == {"city": 4}
    assert preview["excluded"] == {"missing_attribute": 4}
    assert preview["eligible"] == 2


def test_audience_preview_of_a_template(marketer_client, topic, consented):
    consented(2, topic, channel="whatsapp", attributes={"first_name": "Ada"})
    consented(1, topic, channel="whatsapp", start=2)
    broadcast = make_broadcast(topic, channel="whatsapp", body="", template=WHATSAPP["template"])
    preview = marketer_client.get(f"/api/v1/broadcasts/{broadcast.pk}/audience/").json()
    assert preview["missing_placeholders"] == {"first_name": 1} and preview["eligible"] == 2


def test_test_send_to_a_contact_lacking_a_placeholder_is_a_400(marketer_client, topic, consented, use_stand_in):
    consented(1, topic)
    broadcast = make_broadcast(topic, body="Hi {{ first_name }}! STOP to opt out.")
    response = marketer_client.post(f"/api/v1/broadcasts/{broadcast.pk}/test/", {"phone": "+12125550000"}, format="json")
    assert response.status_code == 400 and "first_name" in response.json()["phone"][0]
    assert use_stand_in.messages() == []


# --- stats that tell the truth ---------------------------------------------------------------


@pytest.mark.parametrize("schedule", [False, True])
def test_a_draft_or_scheduled_broadcast_shows_the_audience_it_would_have_now(marketer_client, topic, consented,
                                                                             schedule):
    consented(3, topic)
    broadcast = make_broadcast(topic, send_at=timezone.now() + timedelta(days=1))
    if schedule:
        services.broadcast_schedule(broadcast=broadcast)
    body = marketer_client.get(f"/api/v1/broadcasts/{broadcast.pk}/").json()
    assert body["stats"]["audience"] == 3
    assert body["stats"]["audience"] == marketer_client.get(f"/api/v1/broadcasts/{broadcast.pk}/audience/").json()["audience"]
    assert body["stats"]["next_due_at"] is None


@pytest.mark.parametrize("depth", [500, 100_000])
def test_a_deeply_nested_template_is_a_400_not_a_500(marketer_client, topic, depth):
    body = ('{"name": "x", "topic": "promo", "channel": "whatsapp", "template": {"name": "a", "language": "en_US", '
            '"components": [{"type": "body", "parameters": ' + "[" * depth + "]" * depth + "}]}}")
    response = marketer_client.generic("POST", "/api/v1/broadcasts/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
