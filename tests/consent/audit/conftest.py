"""Ledger fixtures for audit tests, and a superuser's way around the append-only triggers."""

import contextlib

import pytest
from django.db import connection

from consent import services
from consent.migrations import _ledger_triggers as triggers
from consent.models import Source
from consent.selectors import contact_get_by_phone

PHONES = ["+14155550123", "+14155550124", "+33612345678"]


class _RawEditor:
    """Just enough of a schema editor for the trigger SQL, usable inside the test's transaction."""

    def __init__(self, conn):
        self.connection = conn

    def execute(self, sql):
        with self.connection.cursor() as cursor:
            cursor.execute(sql)


@contextlib.contextmanager
def triggers_lifted():
    """What a database superuser could do: drop the append-only triggers, and put them back after."""
    editor = _RawEditor(connection)
    triggers.uninstall(editor, triggers.ALL)
    try:
        yield
    finally:
        triggers.install(editor, triggers.ALL)


def raw_sql(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.fixture(autouse=True)
def signing_key(settings, tmp_path):
    """A fresh development key under a temporary data folder."""
    settings.AUDIT_SIGNING_KEY = ""
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "audit-signing-key.pem"
    return settings.AUDIT_SIGNING_KEY_FILE


@pytest.fixture
def ledger(topic, run_on_commit, signing_key):
    """A small history: three contacts request, two confirm, one revokes; every prompt is sent."""
    for phone in PHONES:
        with run_on_commit():
            services.optin_request(phone=phone, topic=topic, channel="sms", source=Source.API,
                                   evidence={"ip": "203.0.113.9", "user_agent": "=HYPERLINK(\"x\")"})
    for phone in PHONES[:2]:
        with run_on_commit():
            services.optin_confirm_by_reply(contact=contact_get_by_phone(phone), channel="sms",
                                            source=Source.SMS_KEYWORD, evidence={"inbound_text": "YES"})
    with run_on_commit():
        services.consent_revoke(contact=contact_get_by_phone(PHONES[1]), channel="sms", source=Source.SMS_KEYWORD,
                                reason="keyword", evidence={"inbound_text": "STOP"}, actor="-minus-actor")
    return topic
