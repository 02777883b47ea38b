"""Per-sender send-rate limiting shared by every worker process.

Algorithm: GCRA (generic cell rate algorithm), i.e. a token bucket kept as one number, the
"theoretical arrival time" (TAT) of the next send. With `burst=1` (the default) sends are
spaced evenly, 1/rate apart, instead of going out in bursts at the start of each second.

`acquire()` never sleeps: it either takes the slot (returns 0.0) or takes nothing and returns
how many seconds to wait before asking again. Taking nothing when refused means a worker that
gives up (or a Celery task that re-schedules itself with `countdown=wait`) wastes no capacity.

Backends:
- Redis (settings.REDIS_URL): one Lua script does read-compute-write atomically on the Redis
  server with the server's clock, so every worker on every machine shares one limit.
- Otherwise Django's cache (the database cache by default): the same computation under a short
  lock made with `cache.add()` (atomic on the database, locmem and Redis caches). Good for the
  embedded single-machine setup; see CacheThrottle for its limits.
"""

from __future__ import annotations

import threading
import time
import uuid

import redis
from django.conf import settings
from django.core.cache import cache as default_cache

DEFAULT_PREFIX = "throttle:"
EPSILON = 1e-6  # waits below a microsecond are float noise, not a reason to refuse

# KEYS[1] = bucket; ARGV = emission interval (s), n, burst tolerance (s). Returns the wait as a string
# (Redis turns Lua numbers into integers).
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local allow_at = tat - tolerance
if allow_at - now > 0.000001 then
  return string.format('%.6f', allow_at - now)
end
local new_tat = tat + n * interval
local ttl_ms = math.ceil((new_tat - now) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', ttl_ms)
return '0'
"""


class ThrottleTimeout(Exception):
    """wait_and_acquire() would have had to wait longer than its timeout."""


def _check(rate_per_second: float, n: int, burst: int) -> None:
    if not rate_per_second > 0:
        raise ValueError(f"rate_per_second must be positive, got {rate_per_second!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n!r}")
    if burst < 1:
        raise ValueError(f"burst must be at least 1, got {burst!r}")


def gcra(tat: float | None, now: float, rate_per_second: float, n: int, burst: int) -> tuple[float, float | None]:
    """One GCRA step: (seconds to wait, new TAT or None when refused). Pure; used by CacheThrottle."""
    interval = 1.0 / rate_per_second
    tat = max(tat or 0.0, now)
    allow_at = tat - (burst - 1) * interval
    if allow_at - now > EPSILON:
        return allow_at - now, None
    return 0.0, tat + n * interval


class RedisThrottle:
    """GCRA in Redis, atomic across processes and machines (Redis server clock)."""

    def __init__(self, client=None, *, url: str = "", prefix: str = DEFAULT_PREFIX):
        if client is None:
            client = redis.Redis.from_url(url)
        self.client = client
        self.prefix = prefix
        self.script = client.register_script(GCRA_LUA)

    def acquire(self, key: str, rate_per_second: float, n: int = 1, *, burst: int = 1) -> float:
        _check(rate_per_second, n, burst)
        interval = 1.0 / rate_per_second
        wait = self.script(keys=[self.prefix + key], args=[repr(interval), n, repr((burst - 1) * interval)])
        return float(wait)


class CacheThrottle:
    """GCRA over Django's cache API, serialised per key by a lock taken with `cache.add()`.

    Limits: each acquire costs four cache round trips (add lock, get, set, delete lock), so on
    the database cache it suits tens to a few hundred sends per second, not thousands; the clock
    is each process's own `time.time()` (fine on one machine). A holder that dies leaves the
    lock until it expires (`lock_timeout` seconds); meanwhile callers are told to wait briefly.
    """

    def __init__(self, cache=None, *, prefix: str = DEFAULT_PREFIX, clock=time.time, lock_timeout: int = 2):
        if cache is None:
            cache = default_cache
        self.cache = cache
        self.prefix = prefix
        self.clock = clock
        self.lock_timeout = lock_timeout

    def acquire(self, key: str, rate_per_second: float, n: int = 1, *, burst: int = 1) -> float:
        _check(rate_per_second, n, burst)
        bucket = self.prefix + key
        lock = bucket + ":lock"
        token = uuid.uuid4().hex
        if not self.cache.add(lock, token, timeout=self.lock_timeout):
            # Someone else is updating this bucket right now: ask again after a short moment.
            return min(1.0 / rate_per_second, 0.01)
        try:
            now = self.clock()
            wait, new_tat = gcra(self.cache.get(bucket), now, rate_per_second, n, burst)
            if new_tat is not None:
                self.cache.set(bucket, new_tat, timeout=max(1, int(new_tat - now) + 2))
            return wait
        finally:
            if self.cache.get(lock) == token:
                self.cache.delete(lock)


_backend = None
_backend_key = None
_backend_lock = threading.Lock()


def get_throttle():
    """The throttle for this process: Redis when settings.REDIS_URL is set, else the cache."""
    global _backend, _backend_key

    url = getattr(settings, "REDIS_URL", None) or ""
    with _backend_lock:
        if _backend is None or _backend_key != url:
            _backend = RedisThrottle(url=url) if url else CacheThrottle()
            _backend_key = url
        return _backend


def acquire(key: str, rate_per_second: float, n: int = 1, *, burst: int = 1) -> float:
    """Take `n` sends for `key` if allowed now (returns 0.0); else take nothing and return seconds to wait.

    `key` names the sender (e.g. "twilio:+15550006"); `rate_per_second` is its allowed rate;
    `burst` how many sends may go back to back after an idle spell (1 = evenly spaced).
    """
    return get_throttle().acquire(key, rate_per_second, n, burst=burst)


def wait_and_acquire(
    key: str,
    rate_per_second: float,
    n: int = 1,
    *,
    burst: int = 1,
    timeout: float | None = None,
    sleep=time.sleep,
    throttle=None,
) -> float:
    """Block until `n` sends for `key` are taken; returns the seconds spent waiting.

    Raises ThrottleTimeout (having taken nothing) if that would take longer than `timeout`.
    """
    throttle = throttle or get_throttle()
    waited = 0.0
    while True:
        wait = throttle.acquire(key, rate_per_second, n, burst=burst)
        if wait <= 0:
            return waited
        if timeout is not None and waited + wait > timeout + 1e-9:
            raise ThrottleTimeout(f"sending on {key!r} would wait more than {timeout} s")
        sleep(wait)
        waited += wait
