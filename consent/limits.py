"""SMS-pumping protection: limits on confirmation prompts, whatever asked for them (hosted page, API,
keyword). Counters live in the shared Django cache (Redis when REDIS_URL is set, else the database
cache), so every web and worker process counts together; numbers are keyed by their pseudonym,
never in clear.

Settings (all optional):
- OPTIN_ALLOWED_COUNTRIES (default: every country): ISO 3166 codes numbers must belong to.
- OPTIN_MAX_PER_NUMBER_PER_HOUR (default 3): prompts one number may receive in an hour.
- OPTIN_MAX_PER_NUMBER_PER_DAY (default 5): prompts one number may receive in a UTC day.
- OPTIN_MAX_PER_API_USER_PER_HOUR (default 1000): prompts one API user may ask for in an hour.
- OPTIN_MAX_PER_IP_PER_HOUR (default 10): prompt requests one client IP (an IPv6 /64) may make
  in an hour on the hosted page.
- OPTIN_REPEAT_PROMPT_AFTER_MINUTES (default 10): a request for a consent whose prompt is pending
  and younger than this sends nothing new.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from consent.hashing import phone_pseudonym
from consent.pseudonym_key import pseudonym_key

HOUR = 3600
DAY = 86400
IPV6_PREFIX = 64  # one subscriber's allocation: addresses inside it rotate freely


class LimitExceeded(Exception):
    """A prompt refused by a limit; the message is for the person, `retry_after` (seconds) for a client."""

    def __init__(self, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    per_ip_per_hour: int
    per_number_per_hour: int
    per_number_per_day: int
    per_api_user_per_hour: int
    allowed_countries: frozenset[str]

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            per_ip_per_hour=int(getattr(settings, "OPTIN_MAX_PER_IP_PER_HOUR", 10)),
            per_number_per_hour=int(getattr(settings, "OPTIN_MAX_PER_NUMBER_PER_HOUR", 3)),
            per_number_per_day=int(getattr(settings, "OPTIN_MAX_PER_NUMBER_PER_DAY", 5)),
            per_api_user_per_hour=int(getattr(settings, "OPTIN_MAX_PER_API_USER_PER_HOUR", 1000)),
            allowed_countries=frozenset(c.upper() for c in getattr(settings, "OPTIN_ALLOWED_COUNTRIES", ()) or ()),
        )


def country_allowed(country: str, limits: Limits | None = None) -> bool:
    limits = limits or Limits.from_settings()
    return not limits.allowed_countries or (country or "").upper() in limits.allowed_countries


def _retry_after(window: int, now: float) -> int:
    return int(window - now % window) + 1


def _count(key: str, window: int, now: float, *, once: str = "") -> int:
    """Add one to the fixed-window counter for `key` and return the new count, atomically across processes.

    `once` names the occurrence counted (a prompt: its topic, channel and instant): counted already in
    this window, it is not counted again and the count is returned as it stands. The counters live
    outside the database, so a transaction that rolls back does not take its count back, and the
    applier applies a batch that rolled back again, row by row, with the instant each message arrived:
    without `once` one JOIN counted twice towards the number's limits. (A crash between the marker and
    the increment counts one prompt too few, never one too many.)
    """
    cache = caches["default"]
    bucket = f"optin-limit:{key}:{window}:{int(now // window)}"
    timeout = window + 60
    if once and not cache.add(f"{bucket}:once:{once}", 1, timeout=timeout):
        return int(cache.get(bucket) or 0)
    if isinstance(cache, RedisCache):  # INCR is atomic on the server
        cache.add(bucket, 0, timeout=timeout)
        try:
            return cache.incr(bucket)
        except ValueError:  # evicted between add and incr
            return 1 if cache.add(bucket, 1, timeout=timeout) else cache.incr(bucket)
    # Elsewhere (the database cache) get-then-set is not atomic: serialise it with a lock that
    # cache.add() takes atomically.
    lock, holder = f"{bucket}:lock", uuid.uuid4().hex
    for _ in range(100):
        if cache.add(lock, holder, timeout=2):
            break
        time.sleep(0.01)
    else:
        raise LimitExceeded("We are busy. Please try again in a minute.", retry_after=60)
    try:
        count = int(cache.get(bucket) or 0) + 1
        cache.set(bucket, count, timeout=timeout)
        return count
    finally:
        if cache.get(lock) == holder:
            cache.delete(lock)


def ip_key(ip: str) -> str:
    """The counter key of a client address: IPv4 as it is, IPv6 by its /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


def page_request_allowed(*, ip: str, now: float | None = None) -> None:
    """Count one opt-in request from a client address on the hosted page, or raise LimitExceeded."""
    limits = Limits.from_settings()
    now = time.time() if now is None else now
    if ip and _count(f"ip:{ip_key(ip)}", HOUR, now) > limits.per_ip_per_hour:
        raise LimitExceeded("Too many sign-up attempts from your network. Please try again in an hour.",
                            retry_after=_retry_after(HOUR, now))


def prompt_allowed(*, e164: str, actor: str = "", now: float | None = None, once: str = "") -> None:
    """Count one confirmation prompt to `e164` (asked for by API user `actor`, if any), or raise LimitExceeded.

    `once` names the prompt, so that the same prompt asked for again (its transaction applied again) is
    counted once (`_count`)."""
    limits = Limits.from_settings()
    now = time.time() if now is None else now
    subject = phone_pseudonym(e164, pseudonym_key())
    once = f"{subject}:{once}" if once else ""  # one API request may ask prompts for many numbers at one instant
    if actor and _count(f"user:{actor}", HOUR, now, once=once) > limits.per_api_user_per_hour:
        raise LimitExceeded("This API user has asked for the maximum number of confirmation prompts for this hour.",
                            retry_after=_retry_after(HOUR, now))
    if _count(f"number:{subject}", HOUR, now, once=once) > limits.per_number_per_hour:
        raise LimitExceeded("We have already sent several messages to this number. Please try again in an hour.",
                            retry_after=_retry_after(HOUR, now))
    if _count(f"number-day:{subject}", DAY, now, once=once) > limits.per_number_per_day:
        raise LimitExceeded("This number has received the maximum number of confirmation messages for today.",
                            retry_after=_retry_after(DAY, now))
