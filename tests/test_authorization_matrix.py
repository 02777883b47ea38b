"""Every endpoint × every role × no token, in one table built against the URL resolver.

A route (or an API method) the resolver knows and this table does not fails
`test_the_table_covers_every_route`, so a new endpoint cannot ship without a decision here.

Legend per identity: ALLOW = the request gets past authentication and permissions (any status
but 401/403, never 5xx); DENY = 401 without a token, 403 with a token of the wrong role.
Webhooks ignore API tokens entirely: without the provider's signature everyone gets 403.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

IDENTITIES = ("anonymous", "auditor", "marketer", "admin", "agent")
EVERYONE = frozenset(IDENTITIES)
ANY_ROLE = frozenset({"auditor", "marketer", "admin"})
WRITERS = frozenset({"marketer", "admin"})
AUDITORS = frozenset({"auditor", "admin"})
ADMIN = frozenset({"admin"})
CARE = frozenset({"agent", "admin"})  # the care inbox; agents nothing else (revocations: only via a conversation)
SIGNATURE = "signature"  # webhooks: authenticated by the provider's signature only
SESSION = "session"  # Django admin: staff session login only, an API token is not enough

MATRIX = {
    ("api/v1/topics/", "GET"): ANY_ROLE,
    ("api/v1/topics/", "POST"): WRITERS,
    ("api/v1/topics/<slug:slug>/", "GET"): ANY_ROLE,
    ("api/v1/topics/<slug:slug>/", "PATCH"): WRITERS,
    ("api/v1/topics/<slug:slug>/texts/", "GET"): ANY_ROLE,
    ("api/v1/optins/", "POST"): WRITERS,
    ("api/v1/optins/confirm/", "POST"): EVERYONE,  # the single-use token in the body is the secret
    ("api/v1/consents/", "GET"): ANY_ROLE,
    ("api/v1/consents/revoke/", "POST"): WRITERS,
    ("api/v1/consents/import/", "POST"): ADMIN,
    ("api/v1/messages/", "GET"): ANY_ROLE,
    ("api/v1/revocations/review/", "GET"): ANY_ROLE,  # auditors read the queue; only writers decide
    ("api/v1/revocations/review/<int:pk>/resolve/", "POST"): WRITERS,
    ("api/v1/contacts/", "GET"): ANY_ROLE,
    ("api/v1/contacts/", "POST"): WRITERS,
    ("api/v1/contacts/import/", "POST"): ADMIN,
    ("api/v1/contacts/<str:phone>/", "GET"): ANY_ROLE,
    ("api/v1/contacts/<str:phone>/", "PATCH"): WRITERS,
    ("api/v1/contacts/<str:phone>/proof/", "GET"): AUDITORS,
    ("api/v1/contacts/<str:phone>/erase/", "POST"): ADMIN,
    ("api/v1/contacts/<str:phone>/receipts/", "GET"): AUDITORS,
    ("api/v1/audit/events/", "GET"): AUDITORS,
    ("api/v1/audit/verify/", "GET"): AUDITORS,
    ("api/v1/audit/export/", "GET"): AUDITORS,
    ("api/v1/audit/export/manifest/", "GET"): AUDITORS,
    ("api/v1/audit/actions/", "GET"): AUDITORS,
    ("api/v1/audit/texts/", "GET"): AUDITORS,
    ("api/v1/audit/public-key/", "GET"): EVERYONE,
    ("api/v1/broadcasts/", "GET"): ANY_ROLE,
    ("api/v1/broadcasts/", "POST"): WRITERS,
    ("api/v1/broadcasts/<int:pk>/", "GET"): ANY_ROLE,
    ("api/v1/broadcasts/<int:pk>/schedule/", "POST"): WRITERS,
    ("api/v1/broadcasts/<int:pk>/pause/", "POST"): WRITERS,
    ("api/v1/broadcasts/<int:pk>/resume/", "POST"): WRITERS,
    ("api/v1/broadcasts/<int:pk>/cancel/", "POST"): WRITERS,
    ("api/v1/broadcasts/<int:pk>/audience/", "GET"): ANY_ROLE,
    ("api/v1/broadcasts/<int:pk>/test/", "POST"): WRITERS,
    ("api/v1/broadcasts/<int:pk>/deliveries/", "GET"): ANY_ROLE,
    ("api/v1/conversations/", "GET"): CARE,
    ("api/v1/conversations/<int:pk>/", "GET"): CARE,
    ("api/v1/conversations/<int:pk>/reply/", "POST"): CARE,
    ("api/v1/conversations/<int:pk>/close/", "POST"): CARE,
    ("api/v1/conversations/<int:pk>/assign/", "POST"): CARE,
    ("api/v1/policies/", "GET"): ANY_ROLE,
    ("webhooks/twilio/inbound/", "POST"): SIGNATURE,
    ("webhooks/twilio/status/", "POST"): SIGNATURE,
    ("webhooks/whatsapp/", "GET"): SIGNATURE,  # hub.verify_token
    ("webhooks/whatsapp/", "POST"): SIGNATURE,
    ("optin/confirm/<str:token>/", "GET"): EVERYONE,  # public pages; confirming needs the token and a POST
    ("optin/<slug:topic>/", "GET"): EVERYONE,
    ("preferences/<str:token>/", "GET"): EVERYONE,  # public page; the signed link is the secret
    ("api/schema/", "GET"): EVERYONE,
    ("api/docs/", "GET"): EVERYONE,
    ("api/redoc/", "GET"): EVERYONE,
    ("healthz/", "GET"): EVERYONE,
    ("readyz/", "GET"): EVERYONE,
    ("admin/", "GET"): SESSION,
    ("workspace/", "GET"): SESSION,  # the dashboard, behind the admin's staff login
    ("workspace/contacts/import/", "GET"): SESSION,
}

API_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _routes(patterns=None, prefix=""):
    """(route, view) for every URL the resolver knows; the admin site counts as one route."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if route == "admin/":
                yield route, None
            else:
                yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


def _resolver_entries():
    entries = set()
    for route, callback in _routes():
        view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
        if view_class is not None:
            entries |= {(route, m) for m in API_METHODS if hasattr(view_class, m.lower())}
        else:  # a function view: its methods are whatever the table says, but the route must be there
            entries |= {(r, m) for (r, m) in MATRIX if r == route} or {(route, "?")}
    return entries


def test_the_table_covers_every_route():
    known = _resolver_entries()
    missing = sorted(known - set(MATRIX))
    stale = sorted(set(MATRIX) - known)
    assert not missing, f"endpoints without an authorization decision in MATRIX: {missing}"
    assert not stale, f"MATRIX entries for routes that no longer exist: {stale}"


@pytest.fixture
def world(topic, make_user):
    """Objects for the path parameters, and one token per role."""
    from broadcasts import services as broadcast_services
    from consent import services
    from consent.models import Source

    services.optin_request(phone="+14155550100", topic=topic, channel="sms", source=Source.API, evidence={})
    tokens = {role: make_user(role)[1] for role in ("auditor", "marketer", "admin", "agent")}
    broadcast = broadcast_services.broadcast_create(name="matrix", topic=topic, channel="sms", body="Hi")
    return {"slug": "promo", "topic": "promo", "phone": "+14155550100", "pk": str(broadcast.pk),
            "token": "not-a-real-token", "tokens": tokens}


def _url(route, world):
    import re

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: world[m.group(1)], route)


@pytest.mark.parametrize("route,method", sorted(MATRIX), ids=[f"{m} {r}" for r, m in sorted(MATRIX)])
def test_authorization(route, method, world, client):
    from rest_framework.test import APIClient

    url = _url(route, world)
    rule = MATRIX[(route, method)]
    for who in IDENTITIES:
        api = APIClient()
        if who != "anonymous":
            api.credentials(HTTP_AUTHORIZATION=f"Token {world['tokens'][who]}")
        response = api.generic(method, url, data="{}", content_type="application/json")
        status = response.status_code
        label = f"{who}: {method} {url} -> {status}"
        assert status < 500, label
        if rule == SIGNATURE:
            assert status == 403, label
        elif rule == SESSION:
            assert status == 302 and "/login/" in response["Location"], label
        elif who in rule:
            assert status not in (401, 403), label
        elif who == "anonymous":
            assert status == 401, label
        else:
            assert status == 403, label
