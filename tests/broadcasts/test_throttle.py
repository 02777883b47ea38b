"""Send-rate limiting: the GCRA step, the Redis and cache backends, and wait_and_acquire."""

import multiprocessing
import threading
import time
import uuid
from itertools import pairwise

import pytest

from broadcasts import throttle as throttle_module
from broadcasts.throttle import CacheThrottle, RedisThrottle, ThrottleTimeout, gcra, get_throttle, wait_and_acquire

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_or_skip():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.exceptions.RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    return client


@pytest.fixture
def redis_throttle():
    client = redis_or_skip()
    prefix = f"test-throttle-{uuid.uuid4().hex}:"
    yield RedisThrottle(client, prefix=prefix)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)


@pytest.fixture
def locmem_throttle():
    from django.core.cache.backends.locmem import LocMemCache

    return CacheThrottle(LocMemCache(f"throttle-{uuid.uuid4().hex}", {}), prefix=f"t-{uuid.uuid4().hex}:")


@pytest.fixture
def db_cache_throttle(settings, db):
    from django.core.cache import caches
    from django.core.management import call_command

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "throttle_test_cache"}}
    call_command("createcachetable", verbosity=0)
    return CacheThrottle(caches["default"], prefix=f"t-{uuid.uuid4().hex}:")


@pytest.fixture(params=["redis", "locmem", "db_cache"])
def any_throttle(request):
    return request.getfixturevalue(f"{request.param}_throttle")


# -- the pure GCRA step ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, rate, burst, steps",
    [
        # steps: (now, n, expected wait); a refused step changes nothing.
        ("evenly spaced", 10, 1, [(0.0, 1, 0.0), (0.0, 1, 0.1), (0.05, 1, 0.05), (0.1, 1, 0.0), (0.1, 1, 0.1), (0.25, 1, 0.0)]),
        ("idle time is not saved up", 10, 1, [(0.0, 1, 0.0), (5.0, 1, 0.0), (5.0, 1, 0.1)]),
        ("burst of three then spacing", 10, 3, [(0.0, 1, 0.0), (0.0, 1, 0.0), (0.0, 1, 0.0), (0.0, 1, 0.1), (0.1, 1, 0.0), (0.1, 1, 0.1)]),
        ("n sends at once push the next ones back", 10, 1, [(0.0, 5, 0.0), (0.0, 1, 0.5), (0.5, 1, 0.0)]),
        ("slow rate", 0.5, 1, [(100.0, 1, 0.0), (101.0, 1, 1.0), (102.0, 1, 0.0)]),
    ],
)
def test_gcra_steps(label, rate, burst, steps):
    tat = None
    for now, n, expected in steps:
        wait, new_tat = gcra(tat, now, rate, n, burst)
        assert wait == pytest.approx(expected, abs=1e-9), (label, now)
        if new_tat is not None:
            tat = new_tat


# -- the backends ------------------------------------------------------------------------------


def test_second_send_waits_one_interval(any_throttle):
    assert any_throttle.acquire("sender-a", 2.0) == 0.0
    wait = any_throttle.acquire("sender-a", 2.0)
    assert 0.3 < wait <= 0.5
    # A refused call takes nothing: asking again right away gives the same (or a shorter) wait.
    assert any_throttle.acquire("sender-a", 2.0) <= wait


def test_keys_are_independent(any_throttle):
    assert any_throttle.acquire("sender-a", 1.0) == 0.0
    assert any_throttle.acquire("sender-b", 1.0) == 0.0
    assert any_throttle.acquire("sender-a", 1.0) > 0.5


def test_burst_allows_back_to_back_sends_then_smooths(any_throttle):
    waits = [any_throttle.acquire("bursty", 5.0, burst=3) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.1 < waits[3] <= 0.2


def test_allowed_again_after_waiting(any_throttle):
    assert any_throttle.acquire("sender-c", 20.0) == 0.0
    wait = any_throttle.acquire("sender-c", 20.0)
    time.sleep(wait + 0.01)
    assert any_throttle.acquire("sender-c", 20.0) == 0.0


@pytest.mark.parametrize("rate, n, burst", [(0, 1, 1), (-1, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_bad_arguments_are_refused(locmem_throttle, rate, n, burst):
    with pytest.raises(ValueError):
        locmem_throttle.acquire("x", rate, n, burst=burst)


def test_threads_sharing_a_cache_throttle_are_spaced(locmem_throttle):
    grants = []
    lock = threading.Lock()

    def worker():
        for _ in range(5):
            wait_and_acquire("shared", 50.0, throttle=locmem_throttle)
            with lock:
                grants.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    grants.sort()
    assert len(grants) == 20
    assert grants[-1] - grants[0] >= 19 / 50 - 0.02  # 20 sends at 50/s span at least 0.38 s


def _redis_worker(prefix, count, rate, queue):
    throttle = RedisThrottle(url=REDIS_URL, prefix=prefix)
    for _ in range(count):
        wait_and_acquire("shared-sender", rate, throttle=throttle)
        queue.put(time.time())


def test_processes_sharing_redis_are_held_to_one_rate(redis_throttle):
    queue = multiprocessing.get_context("spawn").Queue()
    processes = [
        multiprocessing.get_context("spawn").Process(target=_redis_worker, args=(redis_throttle.prefix, 8, 40.0, queue))
        for _ in range(3)
    ]
    for process in processes:
        process.start()
    grants = sorted(queue.get(timeout=30) for _ in range(24))
    for process in processes:
        process.join(10)

    # 24 sends at 40/s, evenly spaced: at least 23 intervals of 25 ms, and no two sends bunched up.
    assert grants[-1] - grants[0] >= 23 / 40 - 0.03
    gaps = [b - a for a, b in pairwise(grants)]
    assert sorted(gaps)[len(gaps) // 2] >= 0.02  # median gap close to 25 ms, not a burst


# -- wait_and_acquire and backend selection ----------------------------------------------------


class ScriptedThrottle:
    def __init__(self, waits):
        self.waits = list(waits)

    def acquire(self, key, rate_per_second, n=1, *, burst=1):
        return self.waits.pop(0)


@pytest.mark.parametrize(
    "waits, timeout, slept, error",
    [
        ([0.0], None, [], None),
        ([0.2, 0.1, 0.0], None, [0.2, 0.1], None),
        ([0.2, 0.1, 0.0], 0.3, [0.2, 0.1], None),
        ([0.2, 0.2, 0.0], 0.3, [0.2], ThrottleTimeout),
        ([5.0], 1.0, [], ThrottleTimeout),
    ],
)
def test_wait_and_acquire_sleeps_as_told(waits, timeout, slept, error):
    sleeps = []
    call = lambda: wait_and_acquire("k", 10.0, timeout=timeout, sleep=sleeps.append, throttle=ScriptedThrottle(waits))  # noqa: E731
    if error:
        with pytest.raises(error):
            call()
    else:
        assert call() == pytest.approx(sum(slept))
    assert sleeps == slept


def test_get_throttle_follows_redis_url(settings, monkeypatch):
    monkeypatch.setattr(throttle_module, "_backend", None)
    settings.REDIS_URL = None
    assert isinstance(get_throttle(), CacheThrottle)
    settings.REDIS_URL = REDIS_URL
    assert isinstance(get_throttle(), RedisThrottle)
    monkeypatch.setattr(throttle_module, "_backend", None)


# -- a complete install ------------------------------------------------------------------------


@pytest.mark.django_db
def test_migrate_alone_creates_the_default_cache_table():
    """`manage.py migrate` is a complete install: the throttle's database cache needs no `createcachetable`."""
    from django.core.cache.backends.db import DatabaseCache
    from django.db import connection

    assert "consent_cache" in connection.introspection.table_names()
    cache = DatabaseCache("consent_cache", {})
    throttle = CacheThrottle(cache, prefix=f"t-{uuid.uuid4().hex}:")
    assert throttle.acquire("sms", 10.0, 1, burst=1) == 0.0
