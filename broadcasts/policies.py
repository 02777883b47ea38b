"""Jurisdiction policies: where, when and how often a promotional message may reach a person
(rules 9, 12 and 13 of docs/design.md).

Pure data and pure functions: no ORM, no settings read here (the caller passes a brand's settings
in). Each jurisdiction has a window (local hours, weekdays, a public-holiday calendar) and caps
(at most `count` promotional messages per rolling `hours`, counted over one topic or over all of
them), and every window and cap names the rule that imposes it; `RULES` gives each rule's source.

- A US state's policy is the federal one narrowed by the state's (the later start, the earlier end,
  both sets of caps). The state comes from the number's area code (`phonenumbers`' geocoder, through
  the table it generates: broadcasts/area_codes.py), the way Florida's, Oklahoma's and Maryland's acts
  presume where the called person is. A +1 number
  whose area code places it in no state gets the strictest US policy (`US-UNPLACED`).
- A brand narrows windows (`BROADCAST_QUIET_HOURS`) and adds caps (`BROADCAST_CAPS`) by settings;
  `narrowing_errors` refuses any setting that would widen a rule, and the app refuses to start
  with one (broadcasts/apps.py).
- `respect_quiet_hours=false` on a broadcast lifts windows, never caps: the caller decides that.

The windows themselves are evaluated by broadcasts.quiet_hours (every zone of the number inside
the window, DST edges, the next allowed instant).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta

import phonenumbers

from .area_codes import US_AREA_CODE_STATES
from .quiet_hours import ALL_DAYS, MONDAY_TO_SATURDAY, QuietHoursPolicy

TOPIC, ALL_TOPICS = "topic", "all"
SCOPES = (TOPIC, ALL_TOPICS)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WINDOW_FIELDS = ("start", "end", "weekdays", "holiday_country", "holiday_subdivision")
CAP_FIELDS = ("count", "hours", "scope")


@dataclasses.dataclass(frozen=True)
class Rule:
    rule: str
    source: str


@dataclasses.dataclass(frozen=True)
class Cap:
    """At most `count` promotional messages per person per rolling `hours` (per topic, or all topics)."""

    count: int
    hours: int
    scope: str
    rule: str

    @property
    def period(self) -> timedelta:
        return timedelta(hours=self.hours)


@dataclasses.dataclass(frozen=True)
class Policy:
    """What applies to one jurisdiction: its window and the rule behind it, its caps, every rule involved."""

    jurisdiction: str
    name: str
    window: QuietHoursPolicy
    window_rule: str
    caps: tuple[Cap, ...] = ()
    rules: tuple[str, ...] = ()


# --- the rules and their sources ------------------------------------------------------------

RULES: dict[str, Rule] = {r.rule: r for r in (
    Rule("us-federal-window",
         "47 CFR §64.1200(c)(1): no telephone solicitation before 8 a.m. or after 9 p.m. local time at the "
         "called party's location"),
    Rule("us-fl-window",
         "Fla. Stat. §501.616(6)(a), as amended by ch. 2021-174 (SB 1120, in force 2021-07-01): no commercial "
         "telephone solicitation before 8 a.m. or after 8 p.m. in the called person's time zone"),
    Rule("us-fl-cap",
         "Fla. Stat. §501.616(6)(b): no more than three commercial telephone solicitation calls or texts to a "
         "person over a 24-hour period on the same subject matter or issue"),
    Rule("us-ok-window",
         "Oklahoma Telephone Solicitation Act of 2022 (HB 3168, 15 O.S. §775C.1 et seq., in force 2022-11-01): "
         "no commercial telephonic sales call before 8 a.m. or after 8 p.m. local time"),
    Rule("us-ok-cap",
         "Oklahoma Telephone Solicitation Act of 2022 (15 O.S. §775C.1 et seq.): no more than three commercial "
         "telephonic sales calls to a person over a 24-hour period on the same subject matter or issue"),
    Rule("us-md-window",
         "Maryland Stop the Spam Calls Act of 2023 (SB 90, Md. Code, Com. Law §14-4501 et seq., in force "
         "2024-01-01): no telephone solicitation before 8 a.m. or after 8 p.m. in the called party's time zone"),
    Rule("us-md-cap",
         "Maryland Stop the Spam Calls Act of 2023 (Md. Code, Com. Law §14-4501 et seq.): no more than three "
         "telephone solicitations (calls or texts) to a person over 24 hours on the same subject matter"),
    Rule("us-unplaced",
         "The number's area code places it in no US state: the strictest US state rule applies (the latest "
         "start, the earliest end and every cap of the states above), as rule 12 of docs/design.md requires"),
    Rule("fr-af2m-window",
         "AF2M, Charte de déontologie des services de Business Messaging (in force 2024-09-01): promotional "
         "messages only on working days (Monday to Saturday, not public holidays) between 08:00 and 22:00"),
    Rule("default-window",
         "Default for every other jurisdiction (rule 12 of docs/design.md): 08:00 to 21:00 local time, every day"),
    Rule("brand-window", "This brand's own narrower window (setting BROADCAST_QUIET_HOURS)"),
    Rule("brand-cap", "This brand's own cap (setting BROADCAST_CAPS)"),
    Rule("broadcast-local-time", "The broadcast's own local send time (`local_time`)"),
    Rule("broadcast-frequency-cap", "The broadcast's own frequency cap (`frequency_cap` per rolling 7 days, this topic)"),
    Rule("whatsapp-held-back",
         "WhatsApp Cloud API error 131049 (Meta chose not to deliver, to maintain healthy ecosystem engagement: the "
         "per-user marketing template limit across businesses); Meta advises retrying later with growing intervals, "
         "never at once: https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/"
         "marketing-templates/per-user-limits"),
    Rule("whatsapp-us-marketing",
         "Meta pauses delivery of marketing template messages to WhatsApp users with +1 numbers (since 2025-04-01): "
         "https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/marketing-templates/"
         "per-user-limits"),
    Rule("inbound-fallback",
         "Rules 7 and 15 of docs/design.md: webhooks received while the database could not be reached wait in the "
         "inbound fallback (Redis) and may hold a STOP; promotional messages wait until they are applied "
         "(setting INBOUND_FALLBACK_HOLD_SECONDS at a time)"),
    Rule("inbound-revocation-pending",
         "Rule 7 of docs/design.md: a STOP (or a clear revocation in other words) received at intake and not yet "
         "applied counts as applied for the send-time gate; the delivery waits until the applier has run"),
    Rule("whatsapp-messaging-limit",
         "WhatsApp messaging limit: unique people a business may start conversations with per moving 24 hours "
         "(250, 2,000, 10,000, 100,000 or unlimited; setting WHATSAPP_MESSAGING_LIMIT): "
         "https://developers.facebook.com/documentation/business-messaging/whatsapp/messaging-limits"),
)}

# --- the jurisdictions ----------------------------------------------------------------------

FEDERAL = QuietHoursPolicy(start=time(8, 0), end=time(21, 0))
EIGHT_TO_EIGHT = QuietHoursPolicy(start=time(8, 0), end=time(20, 0))
THREE_PER_DAY_PER_TOPIC = {"count": 3, "hours": 24, "scope": TOPIC}

# code → (name, window, window rule, caps as (fields, rule)); states are narrowed by "US" below.
JURISDICTIONS: dict[str, tuple] = {
    "US": ("United States (federal)", FEDERAL, "us-federal-window", ()),
    "US-FL": ("Florida", EIGHT_TO_EIGHT, "us-fl-window", ((THREE_PER_DAY_PER_TOPIC, "us-fl-cap"),)),
    "US-OK": ("Oklahoma", EIGHT_TO_EIGHT, "us-ok-window", ((THREE_PER_DAY_PER_TOPIC, "us-ok-cap"),)),
    "US-MD": ("Maryland", EIGHT_TO_EIGHT, "us-md-window", ((THREE_PER_DAY_PER_TOPIC, "us-md-cap"),)),
    "FR": ("France", QuietHoursPolicy(start=time(8, 0), end=time(22, 0), weekdays=MONDAY_TO_SATURDAY, holiday_country="FR"),
           "fr-af2m-window", ()),
    "default": ("Default", QuietHoursPolicy(start=time(8, 0), end=time(21, 0), weekdays=ALL_DAYS), "default-window", ()),
}
US_STATES = {"FL": "US-FL", "OK": "US-OK", "MD": "US-MD"}  # the states with a rule of their own
UNPLACED = "US-UNPLACED"
# A +1 number whose zone is not known either: every contiguous US zone must be inside the window.
UNPLACED_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
# Setting keys that apply to several jurisdictions: every one, or every US one (states included).
EVERY, EVERY_US = "*", "US"


def _statutory(code: str) -> Policy:
    name, window, window_rule, caps = JURISDICTIONS[code]
    caps = tuple(Cap(**fields, rule=rule) for fields, rule in caps)
    rules = (window_rule, *(cap.rule for cap in caps))
    if code.startswith("US-"):
        federal = _statutory("US")
        window = _narrowest(federal.window, window)
        window_rule = window_rule if window != federal.window else federal.window_rule
        rules = (*federal.rules, *rules)
    return Policy(jurisdiction=code, name=name, window=window, window_rule=window_rule, caps=caps, rules=rules)


def _narrowest(a: QuietHoursPolicy, b: QuietHoursPolicy) -> QuietHoursPolicy:
    return dataclasses.replace(a, start=max(a.start, b.start), end=min(a.end, b.end), weekdays=a.weekdays & b.weekdays,
                               holiday_country=a.holiday_country or b.holiday_country,
                               holiday_subdivision=a.holiday_subdivision or b.holiday_subdivision)


def _unplaced() -> Policy:
    """The strictest US policy: every state's window at once, every distinct cap."""
    states = [_statutory(code) for code in JURISDICTIONS if code.startswith("US-")]
    window = FEDERAL
    caps: dict[tuple, Cap] = {}
    for state in states:
        window = _narrowest(window, state.window)
        for cap in state.caps:
            caps.setdefault((cap.count, cap.hours, cap.scope), cap)
    rules = tuple(dict.fromkeys(("us-unplaced", *(rule for state in states for rule in state.rules))))
    return Policy(jurisdiction=UNPLACED, name="United States (state unknown: strictest rule)", window=window,
                  window_rule="us-unplaced", caps=tuple(dataclasses.replace(cap, rule="us-unplaced") for cap in caps.values()),
                  rules=rules)


STATUTORY: dict[str, Policy] = {code: _statutory(code) for code in JURISDICTIONS}
STATUTORY[UNPLACED] = _unplaced()


# --- where a number is ----------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def _nanp_area(area: str) -> str:
    """The jurisdiction of a +1 area code: a US state we know, "US", another country, or unplaced."""
    region = phonenumbers.region_code_for_number(phonenumbers.parse(f"+1{area}2345678", None))
    if region not in (None, "US"):
        return region
    state = US_AREA_CODE_STATES.get(area)
    if region is None or state is None:
        return UNPLACED  # unassigned, toll-free and other codes that place no one
    return US_STATES.get(state, "US")


def jurisdiction_for(phone: str | None, country: str = "") -> str:
    """The jurisdiction code of a number: its US state from the area code, else its country."""
    if phone and phone.startswith("+1") and len(phone) >= 5 and phone[2:5].isdigit():
        return _nanp_area(phone[2:5])
    code = (country or "").upper()
    if not code and phone:
        try:
            code = phonenumbers.region_code_for_number(phonenumbers.parse(phone, None)) or ""
        except phonenumbers.NumberParseException:
            code = ""
    return code


# --- a brand's settings: narrowing only -----------------------------------------------------


def _applies(key: str, code: str) -> bool:
    return key == EVERY or key == code or (key == EVERY_US and code.startswith("US"))


def _key_base(key: str) -> str:
    """The jurisdiction whose window a setting key's fields replace: "*" the default's, "US" the federal one.
    What results is then intersected with each jurisdiction's own window, so it can only narrow it."""
    return "default" if key == EVERY else key


def _targets(key: str) -> list[str]:
    return [code for code in STATUTORY if _applies(key, code)]


def _window_override(base: QuietHoursPolicy, override: Mapping) -> QuietHoursPolicy:
    unknown = set(override) - set(WINDOW_FIELDS)
    if unknown:
        raise ValueError(f"unknown window fields {sorted(unknown)}; expected some of {list(WINDOW_FIELDS)}")
    return dataclasses.replace(base, **override)


def _widening(base: QuietHoursPolicy, narrowed: QuietHoursPolicy) -> str:
    """Why `narrowed` allows an instant `base` forbids ("" if it does not)."""
    if narrowed.start < base.start or narrowed.end > base.end:
        return f"{narrowed.start:%H:%M}-{narrowed.end:%H:%M} is wider than {base.start:%H:%M}-{base.end:%H:%M}"
    if not narrowed.weekdays <= base.weekdays:
        extra = ", ".join(DAY_NAMES[d] for d in sorted(narrowed.weekdays - base.weekdays))
        return f"it opens {extra}, which the rule closes"
    if base.holiday_country and (narrowed.holiday_country, narrowed.holiday_subdivision) != (
            base.holiday_country, base.holiday_subdivision):
        return f"it drops the rule's public holidays ({base.holiday_country})"
    return ""


def _cap_from(fields, key: str) -> Cap:
    if not isinstance(fields, Mapping) or set(fields) - set(CAP_FIELDS) or not {"count", "hours"} <= set(fields):
        raise ValueError(f"BROADCAST_CAPS[{key!r}]: each cap is {{count, hours, scope}} (scope {' or '.join(SCOPES)}), "
                         f"got {fields!r}")
    count, hours, scope = fields["count"], fields["hours"], fields.get("scope", TOPIC)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"BROADCAST_CAPS[{key!r}]: count must be a whole number of at least 1, got {count!r}")
    if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= 24 * 366:
        raise ValueError(f"BROADCAST_CAPS[{key!r}]: hours must be a whole number from 1 to 8784, got {hours!r}")
    if scope not in SCOPES:
        raise ValueError(f"BROADCAST_CAPS[{key!r}]: scope must be {' or '.join(SCOPES)}, got {scope!r}")
    return Cap(count=count, hours=hours, scope=scope, rule="brand-cap")


def narrowing_errors(quiet_hours: Mapping | None, caps: Mapping | None) -> list[str]:
    """Every reason the brand's settings cannot be used: unknown keys or fields, or a setting that widens
    a rule (a window that opens earlier, closes later, opens a closed day or drops a holiday calendar; a
    cap that allows more than a rule's cap over the same or a shorter period). Empty: they only narrow."""
    errors = []
    for key, override in (quiet_hours or {}).items():
        targets = _targets(str(key))
        if not targets:
            errors.append(f"BROADCAST_QUIET_HOURS: unknown jurisdiction {key!r}; expected one of "
                          f"{[EVERY, *STATUTORY]}")
            continue
        if not isinstance(override, Mapping):
            errors.append(f"BROADCAST_QUIET_HOURS[{key!r}] must be an object of window fields {list(WINDOW_FIELDS)}")
            continue
        base = STATUTORY[_key_base(str(key))]
        try:
            narrowed = _window_override(base.window, override)
        except (ValueError, TypeError) as exc:
            errors.append(f"BROADCAST_QUIET_HOURS[{key!r}]: {exc}")
            continue
        why = _widening(base.window, narrowed)
        if why:
            errors.append(f"BROADCAST_QUIET_HOURS[{key!r}] would widen the window of {base.name} ({why}; "
                          f"{RULES[base.window_rule].source}): a brand may only narrow it")
    for key, listed in (caps or {}).items():
        targets = _targets(str(key))
        if not targets:
            errors.append(f"BROADCAST_CAPS: unknown jurisdiction {key!r}; expected one of {[EVERY, *STATUTORY]}")
            continue
        if not isinstance(listed, list | tuple):
            errors.append(f"BROADCAST_CAPS[{key!r}] must be a list of caps {{count, hours, scope}}")
            continue
        for fields in listed:
            try:
                cap = _cap_from(fields, str(key))
            except ValueError as exc:
                errors.append(str(exc))
                continue
            for code in targets:
                for rule_cap in STATUTORY[code].caps:
                    covers = rule_cap.scope == cap.scope or rule_cap.scope == ALL_TOPICS
                    if covers and cap.hours <= rule_cap.hours and cap.count > rule_cap.count:
                        errors.append(
                            f"BROADCAST_CAPS[{key!r}] would widen the cap of {STATUTORY[code].name}: {cap.count} per "
                            f"{cap.hours} h is more than {rule_cap.count} per {rule_cap.hours} h "
                            f"({RULES[rule_cap.rule].source if rule_cap.rule in RULES else rule_cap.rule}); a brand's cap "
                            f"may only be stricter")
    if not errors:
        for code in STATUTORY:  # a narrowing that leaves no window at all (no day, or start after end)
            try:
                _narrowed(code, dict(quiet_hours or {}), dict(caps or {}))
            except (ValueError, TypeError) as exc:
                errors.append(f"BROADCAST_QUIET_HOURS leaves {STATUTORY[code].name} no window: {exc}")
    return list(dict.fromkeys(errors))


def _narrowed(code: str, quiet_hours: Mapping, caps: Mapping) -> Policy:
    policy = STATUTORY[code]
    window = policy.window
    brand_caps = []
    for key in (EVERY, EVERY_US, code):
        if not _applies(key, code):
            continue
        if key in quiet_hours:
            window = _narrowest(window, _window_override(STATUTORY[_key_base(key)].window, quiet_hours[key]))
        brand_caps += [_cap_from(fields, key) for fields in caps.get(key, ())]
    rules = list(policy.rules)
    window_rule = policy.window_rule
    if window != policy.window:
        window_rule = "brand-window"
        rules.insert(0, "brand-window")
    if brand_caps:
        rules.append("brand-cap")
    return dataclasses.replace(policy, window=window, window_rule=window_rule, caps=(*policy.caps, *brand_caps),
                               rules=tuple(dict.fromkeys(rules)))


class PolicyBook:
    """Every jurisdiction's policy under one brand's settings (validated: narrowing only)."""

    def __init__(self, quiet_hours: Mapping | None = None, caps: Mapping | None = None):
        quiet_hours, caps = dict(quiet_hours or {}), dict(caps or {})
        errors = narrowing_errors(quiet_hours, caps)
        if errors:
            raise ValueError("; ".join(errors))
        self.policies = {code: _narrowed(code, quiet_hours, caps) for code in STATUTORY}

    def policy(self, jurisdiction: str) -> Policy:
        return self.policies.get(jurisdiction) or self.policies["default"]

    def for_number(self, phone: str | None, country: str = "") -> Policy:
        return self.policy(jurisdiction_for(phone, country))


@functools.lru_cache(maxsize=8)
def _book(key: str) -> PolicyBook:
    quiet_hours, caps = json.loads(key)
    return PolicyBook(quiet_hours, caps)


def book(quiet_hours: Mapping | None = None, caps: Mapping | None = None) -> PolicyBook:
    """The PolicyBook for these settings, built once per distinct value."""
    return _book(json.dumps([quiet_hours or {}, caps or {}], sort_keys=True, default=str))


# --- caps -----------------------------------------------------------------------------------


def cap_wait(caps: Iterable[Cap], history: Iterable[tuple[object, datetime]], topic, now: datetime
             ) -> tuple[datetime, str] | None:
    """(until, rule) when one more message on `topic` now would pass a cap, else None.

    `history`: (topic, instant) of each promotional message handed over to this person recently. A
    message counts for `cap.hours` after it left; `until` is when enough of them have aged out for
    every cap that binds now (the latest of those instants, with its cap's rule).
    """
    history = list(history)
    wait = None
    for cap in caps:
        since = now - cap.period
        counted = sorted(at for on, at in history if at > since and (cap.scope == ALL_TOPICS or on == topic))
        if len(counted) >= cap.count:
            until = counted[len(counted) - cap.count] + cap.period
            if wait is None or until > wait[0]:
                wait = (until, cap.rule)
    return wait


def longest_period(caps: Iterable[Cap]) -> timedelta:
    return max((cap.period for cap in caps), default=timedelta(0))


# --- what the API shows ---------------------------------------------------------------------


def zones_for(policy: Policy, zones: Iterable[str]) -> tuple[str, ...]:
    """The zones whose windows must all be open: the number's, or for a US number its area code does not
    place (toll-free codes span every NANP zone, from Guam to Newfoundland), every contiguous US zone."""
    if policy.jurisdiction == UNPLACED:
        return UNPLACED_ZONES
    return tuple(z for z in zones if z)


def describe(policy: Policy, *, timezones: Iterable[str] = (), extra_rules: Iterable[str] = ()) -> dict:
    """The policy as `GET /api/v1/policies/` shows it."""
    window = policy.window
    return {
        "jurisdiction": policy.jurisdiction,
        "name": policy.name,
        "window": {"days": [DAY_NAMES[d] for d in sorted(window.weekdays)], "start": window.start.strftime("%H:%M"),
                   "end": window.end.strftime("%H:%M"), "holidays": window.holiday_country or None,
                   "timezones": list(zones_for(policy, timezones)), "rule": policy.window_rule},
        "caps": [{"count": cap.count, "period_hours": cap.hours, "scope": cap.scope, "rule": cap.rule}
                 for cap in policy.caps],
        "rules": [{"rule": rule, "source": RULES[rule].source} for rule in dict.fromkeys((*policy.rules, *extra_rules))],
    }
