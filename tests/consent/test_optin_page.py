"""The hosted opt-in page and the confirmation link page (Django test client)."""

import re

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils.html import escape

from consent import services
from consent.models import ConsentEvent, ConsentStatus, EventKind, Message, Source
from consent.optin.client_ip import client_ip
from tests.prompts import delivered_token

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"


@pytest.fixture(autouse=True)
def clear_limits():
    cache.clear()
    yield
    cache.clear()


def page_post(client, topic, phone=PHONE, *, consent=True, channel="sms", version=None, **extra):
    data = {"phone": phone, "channel": channel, "text_version": version or topic.current_text.version}
    if consent:
        data["consent"] = "on"
    data.update(extra)
    return client.post(f"/optin/{topic.slug}/", data, HTTP_USER_AGENT="Mozilla/5.0 (test)", REMOTE_ADDR="198.51.100.7")


def test_get_shows_the_current_consent_text_and_an_unticked_box(client, topic):
    response = client.get(f"/optin/{topic.slug}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert escape(topic.current_text.consent_text) in html
    checkbox = re.search(r'<input[^>]*name="consent"[^>]*>', html).group(0)
    assert "checked" not in checkbox
    assert "csrfmiddlewaretoken" in html
    assert response["Cache-Control"] == "no-store"


def test_unknown_topic_is_404(client):
    assert client.get("/optin/nope/").status_code == 404


def test_post_creates_a_pending_consent_with_evidence_and_sends_the_prompt(client, topic, run_on_commit):
    with run_on_commit():
        response = page_post(client, topic)
    assert response.status_code == 200
    assert "Check your phone" in response.content.decode()
    consent = topic.consents.get()
    assert (consent.status, consent.source, consent.channel) == (ConsentStatus.PENDING, Source.WEB_FORM, "sms")
    event = ConsentEvent.objects.get(kind=EventKind.REQUESTED)
    assert event.evidence["ip"] == "198.51.100.7"
    assert event.evidence["user_agent"] == "Mozilla/5.0 (test)"
    assert event.evidence["page_url"] == "http://testserver/optin/promo/"
    assert event.evidence["text_version"] == topic.current_text.version
    assert event.text_version == topic.current_text.version
    prompt = Message.objects.get(kind=Message.Kind.CONFIRMATION_PROMPT)
    assert prompt.status == Message.Status.SENT


def test_national_format_needs_a_country_code(client, topic):
    response = page_post(client, topic, phone="415 555 0123")
    assert response.status_code == 400
    assert not topic.consents.exists()


@pytest.mark.parametrize(
    "phone, message",
    [("", "This field is required"), ("hello", "Not a phone number"), ("+1415", "Not a possible phone number"),
     ("+1" + "9" * 40, "Ensure this value has at most 32 characters")],
)
def test_bad_numbers_are_explained_on_the_page(client, topic, phone, message):
    response = page_post(client, topic, phone=phone)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not topic.consents.exists()


def test_the_box_must_be_ticked(client, topic):
    response = page_post(client, topic, consent=False)
    assert response.status_code == 400
    assert "Tick the box" in response.content.decode()
    assert not topic.consents.exists()


def test_a_changed_consent_text_is_shown_again(client, topic):
    old = topic.current_text.version
    services.topic_update(topic=topic, consent_text="New wording, 8 messages a month.")
    response = page_post(client, topic, version=old)
    assert response.status_code == 409
    assert "New wording" in response.content.decode()
    assert not topic.consents.exists()


def test_csrf_is_enforced(topic):
    client = Client(enforce_csrf_checks=True)
    assert page_post(client, topic).status_code == 403
    assert not topic.consents.exists()


def test_csrf_token_from_the_page_works(topic):
    client = Client(enforce_csrf_checks=True)
    html = client.get(f"/optin/{topic.slug}/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert page_post(client, topic, csrfmiddlewaretoken=token).status_code == 200


def test_honeypot_sends_nothing(client, topic):
    response = page_post(client, topic, website="http://spam.example")
    assert response.status_code == 200
    assert not topic.consents.exists()


def neutral(response):
    """The page's body without its CSRF token, which differs on every render."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def test_the_answer_never_tells_a_numbers_state(client, topic):
    """New, subscribed, suppressed or erased: one page, so a visitor learns nothing about someone else's number."""
    from consent.erasure import contact_erase
    from consent.models import Suppression

    numbers = {"new": "+14155550101", "active": "+14155550102", "suppressed": "+14155550103", "erased": "+14155550104"}
    services.optin_request(phone=numbers["active"], topic=topic, channel="sms", source=Source.API)
    delivered_token()
    services.optin_confirm_by_reply(contact=services.contact_get_or_create(phone=numbers["active"]), channel="sms",
                                    source=Source.API)
    suppressed = services.contact_get_or_create(phone=numbers["suppressed"])
    Suppression.objects.create(phone_pseudonym=suppressed.phone_pseudonym, reason="invalid_number")
    contact_erase(contact=services.contact_get_or_create(phone=numbers["erased"]), actor="user:admin")
    answers = {}
    for state, phone in numbers.items():
        response = page_post(client, topic, phone=phone)
        body = neutral(response).replace(f"+1 ••• {phone[-4:]}", "+1 ••• NNNN")
        answers[state] = (response.status_code, body)
    assert answers["new"][0] == 200 and "If +1 ••• NNNN can receive messages" in answers["new"][1]
    assert answers["active"] == answers["new"]
    assert answers["suppressed"] == answers["new"]
    assert answers["erased"] == answers["new"]


# SMS-pumping protection ------------------------------------------------------------------


def test_allowed_countries(client, topic, settings):
    settings.OPTIN_ALLOWED_COUNTRIES = ["FR"]
    response = page_post(client, topic)
    assert response.status_code == 400
    assert "this country" in response.content.decode()
    assert page_post(client, topic, phone="+33612345678").status_code == 200


def test_per_ip_limit(client, topic, settings):
    settings.OPTIN_MAX_PER_IP_PER_HOUR = 3
    for i in range(3):
        assert page_post(client, topic, phone=f"+1415555{i:04d}").status_code == 200
    response = page_post(client, topic, phone="+14155559999")
    assert response.status_code == 429
    assert "Too many sign-up attempts" in response.content.decode()
    assert topic.consents.count() == 3


def test_per_number_hourly_limit(client, topic, settings):
    from datetime import datetime, timedelta, timezone

    import time_machine

    settings.OPTIN_MAX_PER_NUMBER_PER_HOUR = 2
    settings.OPTIN_MAX_PER_IP_PER_HOUR = 100
    start = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    for minutes in (0, 15):  # past the repeat window each time: each one a new prompt
        with time_machine.travel(start + timedelta(minutes=minutes)):
            assert page_post(client, topic).status_code == 200
    with time_machine.travel(start + timedelta(minutes=30)):
        response = page_post(client, topic)
    assert response.status_code == 429
    assert "already sent several messages" in response.content.decode()
    assert Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT).count() == 2


def test_per_ip_limit_keys_an_ipv6_address_by_its_64(client, topic, settings):
    """Addresses inside one /64 belong to one subscriber and rotate freely: they share one counter."""
    settings.OPTIN_MAX_PER_IP_PER_HOUR = 2

    def post(phone, address):
        return client.post(f"/optin/{topic.slug}/", {"phone": phone, "channel": "sms", "consent": "on",
                                                     "text_version": topic.current_text.version}, REMOTE_ADDR=address)

    assert post("+14155550001", "2001:db8:1:2::1").status_code == 200
    assert post("+14155550002", "2001:db8:1:2:aaaa:bbbb:cccc:dddd").status_code == 200
    assert post("+14155550003", "2001:db8:1:2:ffff::9").status_code == 429
    assert post("+14155550004", "2001:db8:1:3::1").status_code == 200  # another /64
    assert topic.consents.count() == 3


@pytest.mark.parametrize("address, key", [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("not an address", "not an address"),
])
def test_ip_keys(address, key):
    from consent.limits import ip_key

    assert ip_key(address) == key


def test_a_repeat_inside_the_repeat_window_sends_no_second_prompt(client, topic):
    first, second = page_post(client, topic), page_post(client, topic)
    assert (first.status_code, neutral(first)) == (second.status_code, neutral(second))
    assert Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT).count() == 1


def test_daily_cap_per_number_across_hours(client, topic, settings):
    from datetime import datetime, timedelta, timezone

    import time_machine

    settings.OPTIN_MAX_PER_NUMBER_PER_HOUR = 10
    settings.OPTIN_MAX_PER_NUMBER_PER_DAY = 3
    settings.OPTIN_MAX_PER_IP_PER_HOUR = 100
    start = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
    for hour in range(3):
        with time_machine.travel(start + timedelta(hours=hour * 2)):
            assert page_post(client, topic).status_code == 200
    with time_machine.travel(start + timedelta(hours=8)):
        response = page_post(client, topic)
    assert response.status_code == 429
    assert "maximum number of confirmation messages for today" in response.content.decode()
    with time_machine.travel(start + timedelta(days=1)):
        assert page_post(client, topic).status_code == 200


# client IP -------------------------------------------------------------------------------


class FakeRequest:
    def __init__(self, remote, forwarded=None):
        self.META = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            self.META["HTTP_X_FORWARDED_FOR"] = forwarded


@pytest.mark.parametrize(
    "proxies, remote, forwarded, expected",
    [
        ([], "198.51.100.7", "203.0.113.1", "198.51.100.7"),  # no proxy configured: header ignored
        (["10.0.0.0/8"], "198.51.100.7", "203.0.113.1", "198.51.100.7"),  # not from our proxy
        (["10.0.0.0/8"], "10.0.0.2", "203.0.113.1", "203.0.113.1"),
        (["10.0.0.0/8"], "10.0.0.2", "6.6.6.6, 203.0.113.1", "203.0.113.1"),  # spoofed left part ignored
        (["10.0.0.0/8"], "10.0.0.2", "203.0.113.1, 10.0.0.9", "203.0.113.1"),  # two of our proxies
        (["10.0.0.0/8"], "10.0.0.2", "garbage, 10.0.0.9", "10.0.0.9"),
        (["10.0.0.0/8"], "10.0.0.2", "", "10.0.0.2"),
        (["10.0.0.0/8"], "10.0.0.2", None, "10.0.0.2"),
        (["10.0.0.0/8"], "10.0.0.2", "203.0.113.1:4711", "203.0.113.1"),
        (["10.0.0.0/8", "::1"], "::1", "[2001:db8::1]:443", "2001:db8::1"),
        (["127.0.0.1"], "127.0.0.1", "2001:db8::5", "2001:db8::5"),
    ],
)
def test_client_ip(settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = proxies
    assert client_ip(FakeRequest(remote, forwarded)) == expected


def test_bad_trusted_proxy_setting_is_an_actionable_error(settings):
    settings.TRUSTED_PROXIES = ["not-an-ip"]
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        client_ip(FakeRequest("10.0.0.1"))


def test_evidence_ip_behind_a_trusted_proxy(client, topic, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    client.post(f"/optin/{topic.slug}/", {"phone": PHONE, "channel": "sms", "consent": "on",
                                           "text_version": topic.current_text.version},
                REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.50")
    assert ConsentEvent.objects.get(kind=EventKind.REQUESTED).evidence["ip"] == "203.0.113.50"


# confirmation link -----------------------------------------------------------------------


def request_token(topic):
    services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.WEB_FORM, evidence={"ip": "192.0.2.1"})
    return delivered_token()


def test_get_of_the_link_never_confirms(client, topic):
    token = request_token(topic)
    for _ in range(3):
        response = client.get(f"/optin/confirm/{token}/")
        assert response.status_code == 200
    assert "Yes, confirm my subscription" in response.content.decode()
    assert response["Referrer-Policy"] == "same-origin"
    assert topic.consents.get().status == ConsentStatus.PENDING


def test_post_of_the_button_confirms_once(client, topic):
    token = request_token(topic)
    response = client.post(f"/optin/confirm/{token}/", HTTP_USER_AGENT="Mozilla/5.0 (test)", REMOTE_ADDR="198.51.100.8")
    assert response.status_code == 200
    assert "Subscription confirmed" in response.content.decode()
    assert topic.consents.get().status == ConsentStatus.ACTIVE
    event = ConsentEvent.objects.get(kind=EventKind.CONFIRMED)
    assert (event.source, event.evidence["ip"], event.evidence["user_agent"]) == (Source.WEB_FORM, "198.51.100.8", "Mozilla/5.0 (test)")
    again = client.post(f"/optin/confirm/{token}/")
    assert again.status_code == 400
    assert "already been used" in again.content.decode()


@pytest.mark.parametrize("token", ["nonsense", "a" * 300, "abc:def:ghi"])
def test_bad_tokens_are_explained(client, topic, token):
    response = client.post(f"/optin/confirm/{token}/")
    assert response.status_code == 400
    assert "not valid" in response.content.decode()


def test_expired_link(client, topic):
    from datetime import timedelta

    import time_machine

    token = request_token(topic)
    with time_machine.travel(timedelta(hours=49)):
        response = client.post(f"/optin/confirm/{token}/")
    assert response.status_code == 400
    assert "expired" in response.content.decode()


def test_confirm_page_enforces_csrf(topic):
    token = request_token(topic)
    assert Client(enforce_csrf_checks=True).post(f"/optin/confirm/{token}/").status_code == 403
    assert topic.consents.get().status == ConsentStatus.PENDING


@pytest.mark.parametrize("e164, masked", [("+14155550123", "+1 ••• 0123"), ("+33612345678", "+33 ••• 5678"), ("", "your number")])
def test_numbers_are_masked_on_pages(e164, masked):
    from consent.optin.views import mask

    assert mask(e164) == masked
