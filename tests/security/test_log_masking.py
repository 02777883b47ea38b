"""No full phone number, API token, Authorization header or provider secret reaches a log line.

The flows are real (API opt-in with the console provider, signed inbound webhooks, 404s on
contact URLs, a failure with a traceback); the assertions read what the configured handlers wrote.
"""

import logging

import pytest

from config.logging import PersonalDataFilter, mask, mask_phone

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"
PHONE_DIGITS = PHONE[1:]


def assert_clean(text, *secrets):
    assert PHONE_DIGITS not in text, f"full number in the log:\n{text}"
    for secret in secrets:
        assert secret not in text, f"secret {secret[:6]}… in the log:\n{text}"


def test_api_optin_logs_the_prompt_with_the_number_and_link_masked(topic, make_user, app_log, run_on_commit, outbox):
    from rest_framework.test import APIClient

    _, token = make_user("marketer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    with run_on_commit():
        response = client.post("/api/v1/optins/", {"phone": PHONE, "topic": "promo", "channel": "sms",
                                                    "evidence": {"ip": "192.0.2.1"}}, format="json")
    assert response.status_code == 201
    log = app_log.getvalue()
    assert "console provider" in log and "+*******0123" in log  # it was logged, masked
    assert "/optin/confirm/[masked]/" in log
    assert_clean(log, token, outbox.token())  # the token the provider got


def test_console_provider_output_masks_the_number(topic, capsys, run_on_commit):
    from consent import services
    from consent.models import Source

    with run_on_commit():
        services.optin_request(phone=PHONE, topic=topic, channel="whatsapp", source=Source.API, evidence={})
    out = capsys.readouterr().out
    assert "outgoing [whatsapp to +*******0123]" in out
    assert PHONE_DIGITS not in out


def test_inbound_webhooks_log_no_number_signature_or_auth_token(topic, twilio_inbound, app_log, run_on_commit):
    from config.logging import MASK  # noqa: F401  (the replacement text)
    from tests.security.conftest import TWILIO_TOKEN

    with run_on_commit():
        assert twilio_inbound(PHONE, "JOIN PROMO", "SM" + "1" * 32).status_code == 200
        assert twilio_inbound(PHONE, "yes", "SM" + "2" * 32).status_code == 200
        assert twilio_inbound(PHONE, "Arrêt", "SM" + "3" * 32).status_code == 200
        assert twilio_inbound(PHONE, f"my number is {PHONE} call me", "SM" + "4" * 32).status_code == 200
    log = app_log.getvalue()
    assert "twilio inbound" in log
    assert_clean(log, TWILIO_TOKEN)


def test_not_found_contact_urls_are_logged_masked(auditor_client, app_log):
    for path in (f"/api/v1/contacts/{PHONE}/", f"/api/v1/contacts/%2B{PHONE_DIGITS}/", f"/api/v1/contacts/{PHONE_DIGITS}/"):
        assert auditor_client.get(path).status_code == 404
    log = app_log.getvalue()
    assert log.count("Not Found") == 3
    assert_clean(log)


def test_a_failure_traceback_is_masked(topic, twilio_inbound, app_log, monkeypatch):
    from consent.intake import applier

    def explode(**kwargs):
        raise RuntimeError(f"cannot reach {PHONE} with Authorization: Token {'a' * 40}")

    monkeypatch.setattr(applier, "inbound_message_receive", explode)
    assert twilio_inbound(PHONE, "STOP", "SM" + "5" * 32).status_code == 200  # recorded; applying failed
    log = app_log.getvalue()
    assert "Traceback" in log and "RuntimeError" in log
    assert_clean(log, "a" * 40)


def test_an_intake_failure_traceback_is_masked(topic, twilio_inbound, app_log, monkeypatch, settings):
    from django.db import OperationalError

    from consent.webhooks import accepted

    def explode(record):
        raise OperationalError(f"cannot record {PHONE}")

    settings.REDIS_URL = None  # no fallback to keep it in: the webhook answers 503
    monkeypatch.setattr(accepted, "intake_record", explode)
    assert twilio_inbound(PHONE, "STOP", "SM" + "6" * 32).status_code == 503
    log = app_log.getvalue()
    assert "OperationalError" in log and "Service Unavailable" in log  # the failure is logged, its number masked
    assert_clean(log)


def test_exception_text_is_masked_for_every_handler_not_only_the_first():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sending to %s", (PHONE,), None)
    try:
        raise ValueError(PHONE)
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    PersonalDataFilter().filter(record)
    PersonalDataFilter().filter(record)  # a second handler's filter changes nothing more
    formatted = logging.Formatter().format(record)
    assert PHONE_DIGITS not in formatted and "+*******0123" in formatted


CASES = [
    # (text, must not survive, must survive)
    ("to +33612345678", "33612345678", "+*******5678"),
    ("to +33 6 12 34 56 78", "12 34 56", "+*******5678"),
    ("whatsapp:+14155550123", "4155550123", "whatsapp:+*******0123"),
    ("wa_id=33612345678", "33612345678", "*******5678"),
    ("/api/v1/contacts/%2B33612345678/", "33612345678", "%2B*******5678"),
    ("Authorization: Token 0123456789abcdef0123456789abcdef01234567", "0123456789abcdef", "Authorization: "),
    ("{'HTTP_AUTHORIZATION': 'Bearer EAAGm0PX4ZCpsBAKZAabcdefghij'}", "EAAGm0PX4ZC", "HTTP_AUTHORIZATION"),
    ("Basic QUMxMjM6c2VjcmV0MTIz", "QUMxMjM6c2VjcmV0MTIz", "Basic "),
    ("X-Twilio-Signature: bm90IGEgc2lnbmF0dXJl", "bm90IGEgc2lnbmF0dXJl", "X-Twilio-Signature"),
    ("X-Hub-Signature-256=sha256=ab12cd34ef56", "ab12cd34ef56", "X-Hub-Signature-256"),
    ("auth_token=0f1e2d3c4b5a69788796a5b4c3d2e1f0&To=x", "0f1e2d3c4b5a", "auth_token="),
    ('{"access_token": "EAAB1234567890abcdefghij"}', "EAAB1234567890", "access_token"),
    ("hub.verify_token=let-me-in-now", "let-me-in-now", "hub.verify_token="),
    ("redis://:hunter22@127.0.0.1:6379/0", "hunter22", "127.0.0.1:6379/0"),
    ("token 0123456789abcdef0123456789abcdef01234567 leaked", "0123456789abcdef0123", "leaked"),
    ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----", "MC4CAQAw", "[masked]"),
    ("https://x.example/optin/confirm/Zm9vYmFy.abc-DEF_1/", "Zm9vYmFy", "/optin/confirm/[masked]/"),
    # Left alone: what operators need.
    ("message 42 failed permanently: 21610", None, "message 42 failed permanently: 21610"),
    ("seq 1234 hash " + "3f" * 32, None, "3f" * 32),
    ("ip 192.168.100.200 at 2026-11-25T18:00:09Z", None, "ip 192.168.100.200 at 2026-11-25T18:00:09Z"),
    ("provider id SM4f1a2b3c4d5e6f708192a3b4c5d6e7f8", None, "SM4f1a2b3c4d5e6f708192a3b4c5d6e7f8"),
]


@pytest.mark.parametrize("text,gone,kept", CASES, ids=[c[0][:40] for c in CASES])
def test_mask_table(text, gone, kept):
    masked = mask(text)
    if gone:
        assert gone not in masked, masked
    assert kept in masked, masked


def test_configured_provider_secrets_are_masked_wherever_they_appear(settings):
    settings.TWILIO_AUTH_TOKEN = "plain-words-secret-value"
    settings.WHATSAPP_APP_SECRET = "another secret with spaces"
    masked = mask("posting with plain-words-secret-value and another secret with spaces!")
    assert "plain-words" not in masked and "another secret" not in masked


def test_mask_phone_keeps_the_last_digits():
    assert mask_phone("+14155550123") == "+*******0123"
    assert mask_phone("whatsapp:+33612345678") == "+*******5678"


def test_celery_handlers_get_the_filter():
    from config.celery import _mask_personal_data

    logger = logging.Logger("celery-like")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    _mask_personal_data(logger=logger)
    _mask_personal_data(logger=logger)
    assert sum(isinstance(f, PersonalDataFilter) for f in handler.filters) == 1
