"""SMS-pumping limits hold inside the opt-in service, whatever asks for a prompt: API, page, keyword."""

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from consent import inbound, services
from consent.models import Consent, Message, Source
from consent.webhooks.parsers import InboundMessage

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"
START = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
OPTIN = {"phone": PHONE, "topic": "promo", "channel": "sms", "evidence": {"ip": "203.0.113.7"}}


def prompts():
    return Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT).count()


def test_25_api_requests_for_one_number_send_one_prompt(marketer_client, topic):
    first = marketer_client.post("/api/v1/optins/", OPTIN, format="json")
    assert first.status_code == 201 and first.json()["prompt_sent"] is True
    for _ in range(24):
        again = marketer_client.post("/api/v1/optins/", OPTIN, format="json")
        assert again.status_code == 200
        assert (again.json()["status"], again.json()["prompt_sent"]) == ("pending", False)
        assert again.json()["requested_at"] == first.json()["requested_at"]
    assert prompts() == 1


def test_the_api_answers_429_past_the_per_number_limit(marketer_client, topic, settings):
    settings.OPTIN_MAX_PER_NUMBER_PER_HOUR = 2
    for minutes in (0, 11):  # each past the repeat window
        with time_machine.travel(START + timedelta(minutes=minutes)):
            assert marketer_client.post("/api/v1/optins/", OPTIN, format="json").status_code == 201
    with time_machine.travel(START + timedelta(minutes=22)):
        response = marketer_client.post("/api/v1/optins/", OPTIN, format="json")
    assert response.status_code == 429
    assert "already sent several messages to this number" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0
    assert prompts() == 2


def test_each_api_user_has_an_hourly_quota(role_client, topic, settings):
    settings.OPTIN_MAX_PER_API_USER_PER_HOUR = 3
    marketer = role_client("marketer")
    with time_machine.travel(START):
        for i in range(3):
            phone = f"+1415555{i:04d}"
            assert marketer.post("/api/v1/optins/", {**OPTIN, "phone": phone}, format="json").status_code == 201
        response = marketer.post("/api/v1/optins/", {**OPTIN, "phone": "+14155559999"}, format="json")
        assert response.status_code == 429
        assert "maximum number of confirmation prompts for this hour" in response.json()["detail"]
        assert role_client("admin").post("/api/v1/optins/", {**OPTIN, "phone": "+14155559999"},
                                         format="json").status_code == 201  # another user's quota
    with time_machine.travel(START + timedelta(hours=1)):
        assert marketer.post("/api/v1/optins/", {**OPTIN, "phone": "+14155558888"}, format="json").status_code == 201


def test_the_api_refuses_numbers_outside_the_allowed_countries(marketer_client, topic, settings):
    settings.OPTIN_ALLOWED_COUNTRIES = ["FR"]
    response = marketer_client.post("/api/v1/optins/", OPTIN, format="json")
    assert response.status_code == 400
    assert "this country" in str(response.json()["phone"])
    assert prompts() == 0 and not Consent.objects.exists()
    assert marketer_client.post("/api/v1/optins/", {**OPTIN, "phone": "+33612345678"}, format="json").status_code == 201


_ids = iter(range(1, 10**6))


def texts(body):
    message = InboundMessage(channel="sms", provider_message_id=f"SMlimit{next(_ids)}", sender=PHONE, text=body)
    return inbound.inbound_message_receive(message=message, provider="twilio")


def test_keyword_joins_obey_the_per_number_limits(topic, settings):
    settings.OPTIN_MAX_PER_NUMBER_PER_HOUR = 2
    for minutes in (0, 11, 22, 33):
        with time_machine.travel(START + timedelta(minutes=minutes)):
            texts("JOIN PROMO")
    assert prompts() == 2
    with time_machine.travel(START + timedelta(hours=1, minutes=1)):
        texts("JOIN PROMO")
    assert prompts() == 3


def test_a_repeat_inside_the_window_changes_nothing(topic):
    with time_machine.travel(START):
        first = services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API)
    with time_machine.travel(START + timedelta(minutes=9)):
        again = services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API)
    assert (first.created, again.created) == (True, False)
    assert again.consent.requested_at == first.consent.requested_at
    with time_machine.travel(START + timedelta(minutes=11)):
        assert services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API).created
    assert prompts() == 2


# The counters live outside the database (Redis), as a cache that no rollback reaches: LocMemCache here.
OUTSIDE_THE_DATABASE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                    "LOCATION": "optin-limits-outside"}}


def test_a_prompt_asked_again_after_its_transaction_rolled_back_is_counted_once(topic, settings):
    from django.core.cache import caches
    from django.db import transaction

    settings.CACHES = OUTSIDE_THE_DATABASE
    settings.OPTIN_MAX_PER_NUMBER_PER_HOUR = 1
    caches["default"].clear()
    with time_machine.travel(START):
        with pytest.raises(RuntimeError), transaction.atomic():
            services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.SMS_KEYWORD, now=START)
            raise RuntimeError("another message of the batch failed")
        # The same prompt (same topic, channel and instant), as the applier asks for it again: counted once.
        assert services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.SMS_KEYWORD,
                                      now=START).created
    assert prompts() == 1
    with time_machine.travel(START + timedelta(minutes=11)):  # another prompt, past the repeat window: counted
        with pytest.raises(services.OptinLimited):
            services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.SMS_KEYWORD)


def test_prompts_at_one_instant_for_many_numbers_each_count_for_the_api_user(settings):
    from django.core.cache import caches

    from consent import limits

    settings.CACHES = OUTSIDE_THE_DATABASE
    settings.OPTIN_MAX_PER_API_USER_PER_HOUR = 2
    caches["default"].clear()

    def ask(phone):
        limits.prompt_allowed(e164=phone, actor="user:7", now=START.timestamp(), once=f"1:sms:{START.isoformat()}")

    ask("+14155550001")
    ask("+14155550002")
    ask("+14155550002")  # the same prompt again: not counted
    with pytest.raises(limits.LimitExceeded, match="API user"):
        ask("+14155550003")


def test_counting_is_serialised_on_a_cache_without_atomic_increments(settings):
    """The database cache's incr is a read then a write: the counter takes a lock there."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                                   "LOCATION": "consent_cache"}}
    from django.core.cache import caches

    from consent import limits

    caches["default"].clear()
    counts = [limits._count("number:x", limits.HOUR, START.timestamp()) for _ in range(3)]
    assert counts == [1, 2, 3]
    assert caches["default"].get(f"optin-limit:number:x:{limits.HOUR}:{int(START.timestamp() // limits.HOUR)}:lock") is None


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")
def test_counting_on_redis_is_atomic_across_threads(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": os.environ["REDIS_URL"]}}
    from django.core.cache import caches

    from consent import limits

    key = f"number:threads-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: limits._count(key, limits.HOUR, START.timestamp()), range(200)))
    assert sorted(counts) == list(range(1, 201))  # no two callers got the same count
    caches["default"].delete(f"optin-limit:{key}:{limits.HOUR}:{int(START.timestamp() // limits.HOUR)}")
