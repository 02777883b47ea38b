"""The phone pseudonym's key is its own secret: rotating DJANGO_SECRET_KEY changes no pseudonym.

Each step runs in a fresh interpreter on the development settings (as `manage.py` would), on one
SQLite file and one data folder, with a different DJANGO_SECRET_KEY each time.
"""

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SCRUB = ("DJANGO_", "CONSENT_", "DATABASE_URL", "CELERY_", "REDIS_URL", "DATA_DIR", "SMS_PROVIDER", "WHATSAPP_")

SETUP = """
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from consent import erasure, inbound, services
from consent.models import Contact
from consent.webhooks.parsers import InboundMessage
topic = services.topic_create(slug="news", name="Acme news", keywords=["NEWS"], consent_text="News consent",
                              confirmation_message="Reply YES to confirm, STOP to cancel.",
                              help_message="Acme news. Reply STOP to opt out.", consent_ttl_days=None)
services.optin_request(phone="+14155550101", topic=topic, channel="sms", source="api")
inbound.inbound_message_receive(message=InboundMessage(channel="sms", provider_message_id="SM1",
                                sender="+14155550101", text="YES"), provider="twilio")
services.optin_request(phone="+14155550102", topic=topic, channel="sms", source="api")
erasure.contact_erase(contact=Contact.objects.get(phone="+14155550102"), actor="admin")
print("set up")
"""

AFTER_ROTATION = """
import django; django.setup()
from django.core.exceptions import ValidationError
from consent import inbound, services
from consent.models import Consent, Contact, Message, Topic
from consent.webhooks.parsers import InboundMessage
topic = Topic.objects.get(slug="news")
problems = []
prompts = Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT).count()
try:
    services.optin_request(phone="+14155550102", topic=topic, channel="sms", source="api")
except ValidationError as exc:
    assert "suppression" in str(exc), exc
else:
    problems.append("the erased number was asked again")
if Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT).count() != prompts:
    problems.append("a new prompt was queued for the erased number")
try:
    result = inbound.inbound_message_receive(message=InboundMessage(channel="sms", provider_message_id="SM2",
                                             sender="+14155550101", text="STOP"), provider="twilio")
except Exception as exc:
    problems.append(f"STOP of an existing contact: {exc!r}")
else:
    if Consent.objects.get(contact__phone="+14155550101").status != "revoked":
        problems.append("STOP did not revoke the existing contact's consent")
assert not problems, problems
print("still the same pseudonyms")
"""


def _run(tmp_path, secret, code):
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", PYTHONPATH=str(ROOT), DATA_DIR=str(tmp_path),
               DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DJANGO_SECRET_KEY=secret, LOG_LEVEL="WARNING")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_rotating_the_django_secret_key_keeps_pseudonyms(tmp_path):
    first = _run(tmp_path, "first-development-secret-key-0123456789", SETUP)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _run(tmp_path, "rotated-development-secret-key-9876543210", AFTER_ROTATION)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "still the same pseudonyms" in second.stdout


def test_development_key_is_generated_once_under_the_data_folder_readable_by_its_owner_only(tmp_path):
    code = ("import django; django.setup(); from consent.pseudonym_key import pseudonym_key;"
            "from consent.ledger import pseudonym_for; print(pseudonym_key()); print(pseudonym_for('+14155550101'))")
    first = _run(tmp_path, "first-development-secret-key-0123456789", code)
    assert first.returncode == 0, first.stderr[-3000:]
    key_file = tmp_path / "consent-pseudonym-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key, pseudonym = first.stdout.split()[-2:]
    assert key_file.read_text().strip() == key and len(key) >= 32
    assert key != "first-development-secret-key-0123456789"
    again = _run(tmp_path, "another-development-secret-key-000000", code)
    assert again.stdout.split()[-2:] == [key, pseudonym]


def test_tests_use_a_fixed_key(settings):
    from consent.pseudonym_key import pseudonym_key

    assert pseudonym_key() == settings.CONSENT_PSEUDONYM_KEY == "test-pseudonym-key"
