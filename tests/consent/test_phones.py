"""consent/phones.py: the E.164 an inbound webhook records is the one a contact stores."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.phones import InvalidPhoneNumber, parse_phone, phone_e164

CASES = [
    ("+14155550100", None), (" +1 (415) 555-0100 ", None), ("0033612345678", None), ("06 12 34 56 78", "FR"),
    ("4155550100", "US"), ("14155550100", None), ("+447700900123", None), ("+15005550006", None),
    ("+1415555", None), ("+999123", None), ("hello", None), ("+" + "1" * 40, None), ("whatsapp:+14155550100", None),
    ("0612345678", None), ("+33 6 12 34 56 78", "US"), ("+8613800138000", None), ("+12125550123", None),
]


def outcome(function, text, region):
    try:
        return function(text, default_region=region)
    except InvalidPhoneNumber as exc:
        return ("invalid", str(exc))


@pytest.mark.parametrize("text,region", CASES)
def test_the_e164_alone_is_the_parsed_numbers_e164(text, region):
    parsed = outcome(parse_phone, text, region)
    expected = parsed.e164 if not isinstance(parsed, tuple) else parsed
    assert outcome(phone_e164, text, region) == expected


@given(st.text(alphabet="+0123456789 ()-.", max_size=20), st.sampled_from([None, "US", "FR", "GB"]))
def test_the_e164_alone_agrees_with_parse_phone_on_any_dialled_text(text, region):
    parsed = outcome(parse_phone, text, region)
    assert outcome(phone_e164, text, region) == (parsed if isinstance(parsed, tuple) else parsed.e164)


@pytest.mark.parametrize("text", ["", "   ", None, 14155550100])
def test_no_text_is_no_number(text):
    with pytest.raises(InvalidPhoneNumber, match="Enter a phone number"):
        phone_e164(text)
