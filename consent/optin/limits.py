"""SMS-pumping protection for the hosted page: per-IP and per-number limits on prompts, a daily
cap per number, and the countries prompts may go to. Counters live in the Django cache (Redis
in production, shared by every web process); numbers are keyed by their pseudonym, never in
clear.

Settings (all optional):
- OPTIN_MAX_PER_IP_PER_HOUR (default 10): prompt requests one client IP may make in an hour.
- OPTIN_MAX_PER_NUMBER_PER_HOUR (default 3): prompts one number may receive in an hour.
- OPTIN_MAX_PER_NUMBER_PER_DAY (default 5): prompts one number may receive in a UTC day.
- OPTIN_ALLOWED_COUNTRIES (default: every country): ISO 3166 codes numbers must belong to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from consent.hashing import phone_pseudonym
from consent.pseudonym_key import pseudonym_key

HOUR = 3600
DAY = 86400


class LimitExceeded(Exception):
    """A request refused by a limit; the message is for the person."""


@dataclass(frozen=True)
class Limits:
    per_ip_per_hour: int
    per_number_per_hour: int
    per_number_per_day: int
    allowed_countries: frozenset[str]

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            per_ip_per_hour=int(getattr(settings, "OPTIN_MAX_PER_IP_PER_HOUR", 10)),
            per_number_per_hour=int(getattr(settings, "OPTIN_MAX_PER_NUMBER_PER_HOUR", 3)),
            per_number_per_day=int(getattr(settings, "OPTIN_MAX_PER_NUMBER_PER_DAY", 5)),
            allowed_countries=frozenset(c.upper() for c in getattr(settings, "OPTIN_ALLOWED_COUNTRIES", ()) or ()),
        )


def country_allowed(country: str, limits: Limits | None = None) -> bool:
    limits = limits or Limits.from_settings()
    return not limits.allowed_countries or country.upper() in limits.allowed_countries


def _count(key: str, window: int, now: float) -> int:
    """Increment the fixed-window counter for `key` and return the new count."""
    bucket = f"optin-limit:{key}:{window}:{int(now // window)}"
    cache.add(bucket, 0, timeout=window + 60)
    try:
        return cache.incr(bucket)
    except ValueError:  # evicted between add and incr
        cache.set(bucket, 1, timeout=window + 60)
        return 1


def prompt_allowed(*, ip: str, e164: str, country: str, now: float | None = None) -> None:
    """Count one prompt request, or raise LimitExceeded saying which limit refused it."""
    limits = Limits.from_settings()
    now = time.time() if now is None else now
    if not country_allowed(country, limits):
        raise LimitExceeded("We do not send messages to numbers in this country.")
    if ip and _count(f"ip:{ip}", HOUR, now) > limits.per_ip_per_hour:
        raise LimitExceeded("Too many sign-up attempts from your network. Please try again in an hour.")
    subject = phone_pseudonym(e164, pseudonym_key())
    if _count(f"number:{subject}", HOUR, now) > limits.per_number_per_hour:
        raise LimitExceeded("We have already sent several messages to this number. Please try again in an hour.")
    if _count(f"number-day:{subject}", DAY, now) > limits.per_number_per_day:
        raise LimitExceeded("This number has received the maximum number of confirmation messages for today.")
