"""Quiet-hour policies: windows per country, French holidays and Sundays, DST, several zones."""

from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from broadcasts.policies import STATUTORY
from broadcasts.quiet_hours import (
    NoAllowedWindowError,
    QuietHoursPolicy,
    is_allowed,
    next_allowed_instant,
    timezones_for_number,
)

US, FR, DEFAULT_POLICY = STATUTORY["US"].window, STATUTORY["FR"].window, STATUTORY["default"].window
NY, LA, HNL, PARIS = "America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "Europe/Paris"


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "label, instant, zones, policy, allowed, expected_next",
    [
        # US: 08:00-21:00 local, every day, no holiday closure.
        ("US opens at 08:00 EDT", utc(2026, 7, 4, 12, 0), [NY], US, True, utc(2026, 7, 4, 12, 0)),
        ("US one minute early", utc(2026, 7, 4, 11, 59), [NY], US, False, utc(2026, 7, 4, 12, 0)),
        ("US 20:59 EDT still open", utc(2026, 7, 5, 0, 59), [NY], US, True, utc(2026, 7, 5, 0, 59)),
        ("US 21:00 EDT closed until tomorrow", utc(2026, 7, 5, 1, 0), [NY], US, False, utc(2026, 7, 5, 12, 0)),
        ("US Sunday is open", utc(2026, 11, 29, 15, 0), [NY], US, True, utc(2026, 11, 29, 15, 0)),
        ("US winter: 08:00 EST is 13:00 UTC", utc(2026, 12, 25, 12, 30), [NY], US, False, utc(2026, 12, 25, 13, 0)),
        # US spring forward (2026-03-08 02:00 -> 03:00): the window follows the new offset.
        ("US DST night before", utc(2026, 3, 8, 6, 0), [NY], US, False, utc(2026, 3, 8, 12, 0)),
        ("US day before DST is EST", utc(2026, 3, 7, 12, 30), [NY], US, False, utc(2026, 3, 7, 13, 0)),
        # US fall back (2026-11-01 02:00 -> 01:00).
        ("US fall back day opens 08:00 EST", utc(2026, 11, 1, 12, 30), [NY], US, False, utc(2026, 11, 1, 13, 0)),
        # FR (AF2M charter): 08:00-22:00, Monday-Saturday, not on public holidays.
        ("FR Monday morning", utc(2026, 11, 30, 7, 0), [PARIS], FR, True, utc(2026, 11, 30, 7, 0)),
        ("FR 21:59 open", utc(2026, 11, 28, 20, 59), [PARIS], FR, True, utc(2026, 11, 28, 20, 59)),
        ("FR Saturday 22:00 -> Monday (Sunday closed)", utc(2026, 11, 28, 21, 0), [PARIS], FR, False, utc(2026, 11, 30, 7, 0)),
        ("FR Sunday noon -> Monday 08:00", utc(2026, 11, 29, 11, 0), [PARIS], FR, False, utc(2026, 11, 30, 7, 0)),
        ("FR 14 July closed -> 15 July 08:00 CEST", utc(2026, 7, 14, 8, 0), [PARIS], FR, False, utc(2026, 7, 15, 6, 0)),
        ("FR 13 July 22:00 -> skips 14 July", utc(2026, 7, 13, 20, 0), [PARIS], FR, False, utc(2026, 7, 15, 6, 0)),
        ("FR 25 December -> 26 December 08:00 CET", utc(2026, 12, 25, 10, 0), [PARIS], FR, False, utc(2026, 12, 26, 7, 0)),
        ("FR Easter weekend: Sunday + Easter Monday", utc(2026, 4, 4, 20, 0), [PARIS], FR, False, utc(2026, 4, 7, 6, 0)),
        ("FR Pentecost Monday closed", utc(2026, 5, 25, 9, 0), [PARIS], FR, False, utc(2026, 5, 26, 6, 0)),
        ("FR 1 May 2027 is a Saturday holiday", utc(2027, 4, 30, 20, 0), [PARIS], FR, False, utc(2027, 5, 3, 6, 0)),
        # FR DST: spring forward on Sunday 2026-03-29; Monday opens at 08:00 CEST (06:00 UTC).
        ("FR Monday after spring forward", utc(2026, 3, 28, 21, 0), [PARIS], FR, False, utc(2026, 3, 30, 6, 0)),
        ("FR Monday after fall back", utc(2026, 10, 24, 20, 0), [PARIS], FR, False, utc(2026, 10, 26, 7, 0)),
        # Several zones (a prefix spanning zones): every zone must be open.
        ("NY open, LA not yet", utc(2026, 7, 6, 13, 0), [NY, LA], US, False, utc(2026, 7, 6, 15, 0)),
        ("NY+LA common window", utc(2026, 7, 6, 16, 0), [NY, LA], US, True, utc(2026, 7, 6, 16, 0)),
        ("NY closed at 21:00, HNL open", utc(2026, 7, 7, 1, 30), [NY, HNL], US, False, utc(2026, 7, 7, 18, 0)),
        ("one zone given as a string", utc(2026, 7, 4, 11, 0), NY, US, False, utc(2026, 7, 4, 12, 0)),
        # Default policy for countries without their own.
        ("default in Tokyo", utc(2026, 7, 4, 22, 0), ["Asia/Tokyo"], DEFAULT_POLICY, False, utc(2026, 7, 4, 23, 0)),
    ],
)
def test_windows(label, instant, zones, policy, allowed, expected_next):
    assert is_allowed(instant, zones, policy) is allowed, label
    assert next_allowed_instant(instant, zones, policy) == expected_next, label


@pytest.mark.parametrize(
    "label, policy, instant, expected_next",
    [
        # 2026-03-29 Europe/Paris: 02:00 CET -> 03:00 CEST; 02:30 does not exist, the window opens at 03:00.
        ("start in spring-forward gap", QuietHoursPolicy(start="02:30", end="05:00"), utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0)),
        # 2026-10-25 Europe/Paris: 03:00 CEST -> 02:00 CET; 02:30 happens twice, the first one counts.
        ("start in fall-back fold", QuietHoursPolicy(start="02:30", end="05:00"), utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30)),
        ("end in spring-forward gap", QuietHoursPolicy(start="01:00", end="02:30"), utc(2026, 3, 29, 0, 59, 59), utc(2026, 3, 29, 0, 59, 59)),
    ],
)
def test_window_edges_inside_dst_transitions(label, policy, instant, expected_next):
    assert next_allowed_instant(instant, [PARIS], policy) == expected_next, label
    assert is_allowed(expected_next, [PARIS], policy), label


def test_window_ending_in_a_gap_closes_at_the_gap():
    policy = QuietHoursPolicy(start="01:00", end="02:30")
    assert is_allowed(utc(2026, 3, 29, 0, 59, 59), [PARIS], policy)  # 01:59:59 CET
    assert not is_allowed(utc(2026, 3, 29, 1, 0), [PARIS], policy)  # 03:00 CEST


def test_zones_without_a_common_window_raise_a_clear_error():
    one_hour = QuietHoursPolicy(start="08:00", end="09:00")
    with pytest.raises(NoAllowedWindowError, match="Asia/Tokyo"):
        next_allowed_instant(utc(2026, 7, 4, 0, 0), ["Asia/Tokyo", NY], one_hour)


def test_far_away_window_is_found_beyond_the_first_week():
    only_christmas_week = QuietHoursPolicy(weekdays=[6], holiday_country="FR")
    # Sundays only, minus French holidays: from a Monday, the next open day is six days later.
    assert next_allowed_instant(utc(2026, 11, 2, 10, 0), [PARIS], only_christmas_week) == utc(2026, 11, 8, 7, 0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: QuietHoursPolicy(start="21:00", end="08:00"), "overnight"),
        (lambda: QuietHoursPolicy(weekdays=[]), "weekdays"),
        (lambda: QuietHoursPolicy(weekdays=[7]), "weekdays"),
        (lambda: is_allowed(datetime(2026, 7, 4, 12), [NY], US), "aware"),
        (lambda: next_allowed_instant(utc(2026, 7, 4, 12), [], US), "at least one"),
    ],
)
def test_programmer_errors_are_reported_early(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "phone, expected",
    [
        ("+12125551234", ("America/New_York",)),
        ("+33612345678", ("Europe/Paris",)),
        ("not a number", ()),
    ],
)
def test_timezones_for_number(phone, expected):
    assert timezones_for_number(phone) == expected


def test_toll_free_us_prefix_spans_many_zones_and_still_has_a_window():
    zones = timezones_for_number("+18005550100")
    assert {NY, LA, HNL} <= set(zones)
    result = next_allowed_instant(utc(2026, 7, 4, 12, 0), zones, US)
    assert is_allowed(result, zones, US)


def test_uses_the_given_instant_not_the_clock():
    with time_machine.travel(utc(2030, 1, 1, 3, 0), tick=False):
        assert next_allowed_instant(utc(2026, 7, 4, 12, 0), [NY], US) == utc(2026, 7, 4, 12, 0)


ZONE_SETS = [[NY], [PARIS], [NY, LA], [NY, HNL], ["Australia/Lord_Howe"], ["America/Santiago", "America/Sao_Paulo"], ["Asia/Kolkata", PARIS]]


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    instant=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(timezone.utc)),
    zones=st.sampled_from(ZONE_SETS),
    policy=st.sampled_from([US, FR, QuietHoursPolicy(start="00:30", end="02:30")]),
)
def test_next_allowed_instant_is_the_earliest_allowed_instant(instant, zones, policy):
    instant = instant.replace(microsecond=0)
    try:
        result = next_allowed_instant(instant, zones, policy)
    except NoAllowedWindowError:  # e.g. a 2-hour night window in zones 3 hours apart
        assert not any(is_allowed(instant + timedelta(minutes=m), zones, policy) for m in range(0, 2 * 24 * 60, 15))
        return

    assert result >= instant
    assert is_allowed(result, zones, policy)
    assert (result == instant) == is_allowed(instant, zones, policy)
    if result > instant:
        assert not is_allowed(result - timedelta(seconds=1), zones, policy)
