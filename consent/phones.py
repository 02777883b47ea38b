"""Phone numbers: parse to E.164 and derive country and time zones (pure, no ORM)."""

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as phone_timezone


class InvalidPhoneNumber(ValueError):
    """The text is not a phone number that could be dialled."""


@dataclass(frozen=True)
class ParsedPhone:
    e164: str
    country: str  # ISO 3166-1 alpha-2, "" when the number belongs to no single region
    timezones: tuple[str, ...]  # every IANA zone the number's prefix may be in

    @property
    def timezone(self) -> str:
        return self.timezones[0] if self.timezones else "UTC"


def parse_phone(text: str, *, default_region: str | None = None) -> ParsedPhone:
    """Parse `text` into E.164, or raise InvalidPhoneNumber with a reason a person can act on."""
    return _parse(_given(text), default_region)


def phone_e164(text: str, *, default_region: str | None = None) -> str:
    """Only the E.164 form of `parse_phone(text)` (InvalidPhoneNumber alike), without its country and time
    zones: what an inbound webhook records. The time zones cost as much again as the parse itself."""
    return _e164(_given(text), default_region)


def _given(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidPhoneNumber("Enter a phone number.")
    return text


# Parsing and validating against the numbering plan is the costliest step of an inbound webhook,
# and the same senders write again (JOIN then YES, STOP): valid results are kept (a few MB at most),
# in each of the two caches below (an inbound webhook fills the E.164 one; opt-ins, contacts and the applier the full one).
@lru_cache(maxsize=20_000)
def _parse(text: str, default_region: str | None) -> ParsedPhone:
    number = _valid_number(text, default_region)
    country = phonenumbers.region_code_for_number(number) or ""
    if country == "001":
        country = ""
    zones = tuple(z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown")
    return ParsedPhone(e164=_format(number), country=country, timezones=zones)


@lru_cache(maxsize=20_000)
def _e164(text: str, default_region: str | None) -> str:
    return _format(_valid_number(text, default_region))


def _format(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _valid_number(text: str, default_region: str | None) -> phonenumbers.PhoneNumber:
    raw = text.strip()
    if len(raw) > 32:
        raise InvalidPhoneNumber("This is too long to be a phone number.")
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    region = None if raw.startswith("+") else default_region
    if region is None and not raw.startswith("+"):
        raw = "+" + raw
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"Not a phone number: {exc.args[0] if exc.args else exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhoneNumber("Not a possible phone number for its country (check the length).")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("Not a valid phone number (unknown prefix for its country).")
    return number
