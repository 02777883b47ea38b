"""Our own reference on a message, as given to providers and read back from their status callbacks."""

import pytest

from consent.webhooks.references import Reference, parse_reference, recipient_may_be, twilio_status_callback


@pytest.mark.parametrize(
    "value, expected",
    [
        ("message-1", Reference("message", 1)),
        ("message-123", Reference("message", 123)),
        ("delivery-456", Reference("delivery", 456)),
        ("delivery-999999999999999999", Reference("delivery", 999_999_999_999_999_999)),
        ("", None),
        (None, None),
        (42, None),
        (["message-1"], None),
        ("garbage", None),
        ("delivery-abc", None),
        ("delivery-", None),
        ("delivery-0", None),
        ("delivery-007", None),
        ("delivery--1", None),
        ("delivery-1.5", None),
        ("delivery-1 ", None),
        (" delivery-1", None),
        ("delivery-1\n", None),
        ("delivery-١٢", None),  # digits, but not ASCII ones
        ("delivery-1234567890123456789", None),  # beyond a database integer
        ("Delivery-1", None),
        ("delivery:42", None),
        ("broadcast-5-test", None),
        ("message-1&ref=message-2", None),
    ],
)
def test_parse_reference_takes_only_our_own(value, expected):
    assert parse_reference(value) == expected


def test_reference_spells_itself():
    assert str(Reference("delivery", 456)) == "delivery-456"
    assert parse_reference(str(Reference("message", 7))) == Reference("message", 7)


def test_status_callback_carries_the_reference(settings):
    settings.PUBLIC_BASE_URL = "https://consent.example.com"
    assert twilio_status_callback("message-123") == "https://consent.example.com/webhooks/twilio/status/?ref=message-123"
    assert twilio_status_callback("delivery-456") == "https://consent.example.com/webhooks/twilio/status/?ref=delivery-456"
    # Nothing that is not one of ours goes on the URL (a test send, no reference at all).
    assert twilio_status_callback("broadcast-5-test") == "https://consent.example.com/webhooks/twilio/status/"
    assert twilio_status_callback() == "https://consent.example.com/webhooks/twilio/status/"


@pytest.mark.parametrize(
    "channel, recipient, phone, expected",
    [
        ("sms", "+14155550123", "+14155550123", True),
        ("sms", "+1 415-555-0123", "+14155550123", True),
        ("sms", "", "+14155550123", True),  # the callback does not say: nothing to compare
        ("sms", "+14155550124", "+14155550123", False),
        ("sms", "+14155550123", None, False),  # erased since
        ("sms", "not a number", "+14155550123", False),
        ("whatsapp", "+5215512345678", "+525512345678", True),  # a WhatsApp id, not spelled like the number
    ],
)
def test_recipient_may_be(channel, recipient, phone, expected):
    assert recipient_may_be(channel=channel, recipient=recipient, phone=phone) is expected
