"""Quiet hours: when a promotional message may reach a person, in their local time (rule 9 of docs/design.md).

Pure logic, no ORM. A window is data: a daily window [start, end) of local wall-clock time,
the weekdays it applies to, and optionally a country whose public holidays (the `holidays`
package) are closed all day. Which window applies to whom (jurisdictions, their sources, a
brand's narrowing) is in broadcasts/policies.py; this module only evaluates one.

A recipient may have several candidate time zones (a number whose prefix spans zones): a
message may leave only when *every* zone is inside its window. `next_allowed_instant` returns
the earliest such instant at or after a given one; deferral never drops a message.

Daylight saving time: a window edge that falls in a spring-forward gap opens at the first
instant the clock reads at or after it (the end of the gap); an edge in a fall-back fold uses
its first occurrence. `is_allowed` and `next_allowed_instant` share that definition.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import holidays as holidays_lib
import phonenumbers
from phonenumbers import timezone as phone_timezones

ALL_DAYS = frozenset(range(7))  # Monday = 0 ... Sunday = 6
MONDAY_TO_SATURDAY = frozenset(range(6))
SEARCH_DAYS = (8, 400)  # look a week ahead first, then over a year before giving up


class NoAllowedWindowError(ValueError):
    """The time zones have no common allowed instant under the policy (within a year)."""


def _as_time(value) -> time:
    if isinstance(value, time):
        return value
    return time.fromisoformat(str(value))


@functools.lru_cache(maxsize=64)
def _holidays_for(country: str, subdivision: str):
    return holidays_lib.country_holidays(country, subdiv=subdivision or None)


@dataclasses.dataclass(frozen=True)
class QuietHoursPolicy:
    """When promotional messages may be sent: a local daily window on some days, minus holidays."""

    start: time = time(8, 0)
    end: time = time(21, 0)
    weekdays: frozenset[int] = ALL_DAYS
    holiday_country: str = ""  # ISO code for `holidays`; its public holidays are closed all day
    holiday_subdivision: str = ""

    def __post_init__(self):
        object.__setattr__(self, "start", _as_time(self.start))
        object.__setattr__(self, "end", _as_time(self.end))
        object.__setattr__(self, "weekdays", frozenset(int(d) for d in self.weekdays))
        if not self.start < self.end:
            raise ValueError(f"quiet-hours window must start before it ends ({self.start} - {self.end}); overnight windows are not supported")
        if not self.weekdays or not self.weekdays <= ALL_DAYS:
            raise ValueError(f"quiet-hours weekdays must be a non-empty subset of 0 (Monday) .. 6 (Sunday), got {sorted(self.weekdays)}")
        if self.holiday_country:
            _holidays_for(self.holiday_country, self.holiday_subdivision)  # fail early on an unknown country

    def is_open_on(self, day: date) -> bool:
        """Whether messages may be sent at all on this local date."""
        if day.weekday() not in self.weekdays:
            return False
        if self.holiday_country and day in _holidays_for(self.holiday_country, self.holiday_subdivision):
            return False
        return True


def is_allowed(instant_utc: datetime, timezones: Iterable[str | tzinfo], policy: QuietHoursPolicy) -> bool:
    """Whether `instant_utc` is inside the policy's window in every one of `timezones`."""
    instant = _as_utc(instant_utc)
    for zone in _zones(timezones):
        local_day = instant.astimezone(zone).date()
        window = _window(local_day, zone, policy)
        if window is None or not window[0] <= instant < window[1]:
            return False
    return True


def next_allowed_instant(instant_utc: datetime, timezones: Iterable[str | tzinfo], policy: QuietHoursPolicy) -> datetime:
    """The earliest instant >= `instant_utc` (in UTC) allowed in every zone.

    Raises NoAllowedWindowError when the zones' windows never overlap (e.g. zones about
    half a day apart with a short window): the caller should then pick a narrower zone set
    (the contact's own zone) or skip quiet hours deliberately, never drop the message.
    """
    instant = _as_utc(instant_utc)
    zones = _zones(timezones)
    for days in SEARCH_DAYS:
        common = None
        for zone in zones:
            intervals = _intervals(instant, days, zone, policy)
            common = intervals if common is None else _intersect(common, intervals)
            if not common:
                break
        if common:
            return max(common[0][0], instant)
    names = ", ".join(str(z) for z in zones)
    raise NoAllowedWindowError(
        f"no instant within {SEARCH_DAYS[-1]} days is inside {policy.start}-{policy.end} in all of: {names}"
    )


def timezones_for_number(phone_e164: str) -> tuple[str, ...]:
    """The IANA zones the number's prefix may be in (several for some US/CA/AU/BR/RU prefixes)."""
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in phone_timezones.time_zones_for_number(number) if z != "Etc/Unknown")


# -- internals ---------------------------------------------------------------------------------


def _as_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("quiet hours need an aware datetime (UTC), got a naive one")
    return instant.astimezone(timezone.utc)


def _zones(timezones) -> list[tzinfo]:
    if isinstance(timezones, (str, tzinfo)):
        timezones = [timezones]
    zones = [z if isinstance(z, tzinfo) else ZoneInfo(z) for z in timezones]
    if not zones:
        raise ValueError("quiet hours need at least one time zone")
    return zones


def _first_instant_at_or_after(day: date, wall: time, zone: tzinfo) -> datetime:
    """The first UTC instant whose wall clock in `zone` on `day` reads `wall` or later."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone).astimezone(timezone.utc)  # fold=0: first occurrence
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # `wall` does not exist (spring-forward gap): find the end of the gap, to the second.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    high = first
    while (high - low) > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    # Offsets change on whole seconds, so the transition is `high` rounded down to the second.
    return high.replace(microsecond=0)


def _window(day: date, zone: tzinfo, policy: QuietHoursPolicy) -> tuple[datetime, datetime] | None:
    if not policy.is_open_on(day):
        return None
    start = _first_instant_at_or_after(day, policy.start, zone)
    end = _first_instant_at_or_after(day, policy.end, zone)
    return (start, end) if start < end else None


def _intervals(instant: datetime, days: int, zone: tzinfo, policy: QuietHoursPolicy) -> list[tuple[datetime, datetime]]:
    first_day = instant.astimezone(zone).date() - timedelta(days=1)
    intervals = []
    for offset in range(days + 1):
        window = _window(first_day + timedelta(days=offset), zone, policy)
        if window is not None and window[1] > instant:
            intervals.append(window)
    return intervals


def _intersect(a: list, b: list) -> list:
    result, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            result.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return result
