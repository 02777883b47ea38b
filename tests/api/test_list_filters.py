"""The list endpoints' query filters (FilterSets): a bad value is a 400 naming the field and the reason;
an empty value filters nothing."""

import pytest

from broadcasts import services as broadcast_services
from broadcasts.models import BroadcastStatus, DeliveryStatus
from consent.models import Channel, ConsentStatus, EventKind, Message

API = "/api/v1"


def one_of(choices):
    return f"One of {', '.join(choices.values)}."


@pytest.fixture
def broadcast(topic):
    return broadcast_services.broadcast_create(name="b", topic=topic, channel="sms", body="Sale! STOP to opt out.",
                                               respect_quiet_hours=False)


BAD = [
    ("consents/", "status=bogus", "status", one_of(ConsentStatus)),
    ("consents/", "phone=not-a-number", "phone", None),
    ("messages/", "channel=pigeon", "channel", one_of(Channel)),
    ("messages/", "direction=up", "direction", one_of(Message.Direction)),
    ("messages/", "kind=bogus", "kind", one_of(Message.Kind)),
    ("messages/", "status=bogus", "status", one_of(Message.Status)),
    ("messages/", "phone=123", "phone", None),
    ("contacts/", "status=bogus", "status", one_of(ConsentStatus)),
    ("contacts/", "phone=not-a-number", "phone", None),
    ("audit/events/", "kind=bogus", "kind", one_of(EventKind)),
    ("audit/events/", "channel=pigeon", "channel", one_of(Channel)),
    ("audit/events/", "since=nope", "since", "Give an ISO 8601 date or date-time, such as 2026-01-31T00:00:00Z."),
    ("audit/events/", "since=2026-02-01&until=2026-01-01", "until", "Must be later than since."),
    ("audit/events/", "topic=unknown", "topic", "Unknown topic 'unknown'."),
    ("audit/events/", "phone=not-a-number", "phone", None),
    ("broadcasts/", "status=bogus", "status", one_of(BroadcastStatus)),
    ("broadcasts/{id}/deliveries/", "status=bogus", "status", one_of(DeliveryStatus)),
]


@pytest.mark.parametrize("path,query,field,reason", BAD, ids=[f"{p}?{q}" for p, q, _, _ in BAD])
def test_a_bad_filter_value_is_a_400_naming_the_field(admin_client_api, broadcast, path, query, field, reason):
    response = admin_client_api.get(f"{API}/{path.format(id=broadcast.pk)}?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [field]
    assert isinstance(body[field], str) and body[field]
    if reason:
        assert body[field] == reason


EMPTY = [("consents/", "phone=&topic=&channel=&status="), ("messages/", "phone=&channel=&direction=&kind=&status="),
         ("contacts/", "phone=&topic=&status="), ("audit/events/", "phone=&topic=&channel=&kind=&since=&until="),
         ("broadcasts/", "status="), ("broadcasts/{id}/deliveries/", "status=")]


@pytest.mark.parametrize("path,query", EMPTY, ids=[p for p, _ in EMPTY])
def test_empty_filter_values_filter_nothing(admin_client_api, broadcast, path, query):
    url = f"{API}/{path.format(id=broadcast.pk)}"
    unfiltered = admin_client_api.get(url)
    response = admin_client_api.get(f"{url}?{query}")
    assert response.status_code == 200, response.content
    assert response.json() == unfiltered.json()


def test_a_phone_filter_accepts_any_form_of_the_number(admin_client_api, topic):
    created = admin_client_api.post(f"{API}/contacts/", {"phone": "+14155550100"}, format="json")
    assert created.status_code == 201
    for phone in ("%2B14155550100", "%2B1%20415%20555%200100", "%2B1-415-555-0100"):
        found = admin_client_api.get(f"{API}/contacts/?phone={phone}").json()["results"]
        assert [c["phone"] for c in found] == ["+14155550100"]
    assert admin_client_api.get(f"{API}/contacts/?phone=%2B14155550199").json()["results"] == []
