"""The inbound fallback (consent/intake/fallback.py) against a real Redis: order, removal after commit only,
one drain at a time, what is set aside, and every answer when Redis or the database is away."""

import json
import time

import pytest
from django.conf import settings
from django.db import OperationalError

from consent.intake import fallback
from consent.models import Topic
from tests.plugins.fallback_redis import closed_port_url

pytestmark = pytest.mark.django_db


def keep(n, kind="k"):
    return [fallback.fallback_append([(kind, {"n": i})])[0] for i in range(n)]


def test_the_entries_of_one_webhook_are_kept_together_in_order(fallback_redis):
    ids = fallback.fallback_append([("record", {"n": 0}), ("update", {"n": 1})])
    assert len(ids) == 2 and ids == sorted(ids)
    assert [e["n"] for e in _payloads(fallback_redis)] == [0, 1]


def test_entries_are_applied_in_arrival_order_and_removed(fallback_redis):
    keep(5)
    assert fallback.fallback_depth() == 5
    seen = []
    assert fallback.fallback_drain(take=lambda entry: seen.append(entry.payload["n"]), batch=2) == 5
    assert seen == [0, 1, 2, 3, 4]
    assert fallback.fallback_depth() == 0
    assert fallback.inbound_backlog() == {"fallback": 0, "fallback_set_aside": 0}


def test_a_batch_is_removed_only_after_its_transaction_committed(fallback_redis):
    keep(5)

    def take(entry):
        Topic.objects.create(slug=f"t{entry.payload['n']}", name="t", keywords=[])
        if entry.payload["n"] == 3:
            raise OperationalError("the database went away mid-drain")

    with pytest.raises(OperationalError):
        fallback.fallback_drain(take=take, batch=2)
    # The first batch is committed and gone; the second rolled back whole (2 with 3) and is first in line again.
    assert list(Topic.objects.values_list("slug", flat=True)) == ["t0", "t1"]
    assert [e["n"] for e in _payloads(fallback_redis)] == [2, 3, 4]
    assert fallback.fallback_drain(take=lambda entry: None) == 3
    assert fallback.fallback_depth() == 0


def _payloads(client):
    return [json.loads(fields[b"entry"])["payload"] for _, fields in client.xrange(settings.INBOUND_FALLBACK_KEY)]


def test_an_entry_that_cannot_be_applied_is_set_aside_not_lost(fallback_redis, settings):
    keep(3)

    def take(entry):
        Topic.objects.create(slug=f"t{entry.payload['n']}", name="t", keywords=[])
        if entry.payload["n"] == 1:
            raise ValueError("not a payload this version knows")

    assert fallback.fallback_drain(take=take) == 2
    # Its own savepoint: what it wrote is undone, the others' stays.
    assert sorted(Topic.objects.values_list("slug", flat=True)) == ["t0", "t2"]
    assert fallback.inbound_backlog() == {"fallback": 0, "fallback_set_aside": 1}
    (_, fields), = fallback_redis.xrange(settings.INBOUND_FALLBACK_KEY + fallback.SET_ASIDE)
    assert b"not a payload this version knows" in fields[b"reason"]
    assert b'"n":1' in fields[b"entry"]


def test_an_unreadable_entry_is_set_aside(fallback_redis, settings):
    fallback_redis.xadd(settings.INBOUND_FALLBACK_KEY, {"entry": "{not json"})
    keep(1)
    seen = []
    assert fallback.fallback_drain(take=lambda entry: seen.append(entry.payload)) == 1
    assert seen == [{"n": 0}]
    assert fallback.inbound_backlog() == {"fallback": 0, "fallback_set_aside": 1}


def test_one_drain_at_a_time(fallback_redis, settings):
    keep(3)
    seen = []

    def take(entry):
        # A second drain started meanwhile (beat, a kick) finds the lock taken and does nothing.
        assert fallback.fallback_drain(take=lambda other: seen.append(("nested", other.payload["n"]))) == 0
        seen.append(entry.payload["n"])

    assert fallback.fallback_drain(take=take) == 3
    assert seen == [0, 1, 2]
    assert not fallback_redis.exists(settings.INBOUND_FALLBACK_KEY + ":drain")  # released


def test_promotions_are_held_while_anything_waits(fallback_redis):
    assert not fallback.promotions_held() and not fallback.fallback_pending()
    keep(1)
    assert fallback.promotions_held() and fallback.fallback_pending()
    fallback.fallback_drain(take=lambda entry: None)
    assert not fallback.promotions_held()


def test_unreachable_redis_holds_promotions_and_refuses_to_keep(settings):
    settings.REDIS_URL = closed_port_url()
    assert fallback.promotions_held()  # a STOP may be waiting there
    assert not fallback.fallback_pending()  # webhooks go to the database meanwhile
    with pytest.raises(fallback.FallbackUnavailable):
        fallback.fallback_append([("k", {})])
    assert fallback.inbound_backlog() == {"fallback": "unreachable", "fallback_set_aside": "unreachable"}


def test_a_redis_that_hangs_is_given_up_after_the_timeout(settings, silent_server):
    settings.REDIS_URL = silent_server
    settings.INBOUND_FALLBACK_TIMEOUT = 0.3
    started = time.monotonic()
    with pytest.raises(fallback.FallbackUnavailable):
        fallback.fallback_append([("k", {})])
    assert time.monotonic() - started < 2


def test_the_embedded_default_has_no_fallback(settings):
    settings.REDIS_URL = None
    assert not fallback.configured()
    assert not fallback.promotions_held() and not fallback.fallback_pending()
    with pytest.raises(fallback.FallbackUnavailable):
        fallback.fallback_append([("k", {})])
    assert fallback.fallback_drain(take=lambda entry: None) == 0
    assert fallback.inbound_backlog() == {"fallback": None, "fallback_set_aside": None}
