"""`manage.py inbound`: act as the customer with the console provider, through the webhook's own path."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from consent.models import Consent, ConsentEvent, ConsentStatus, EventKind, Message, Source

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"
ROOT = Path(__file__).resolve().parents[2]


def inbound(*args):
    out = io.StringIO()
    call_command("inbound", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def consent_status(channel="sms"):
    return Consent.objects.get(contact__phone=PHONE, topic__slug="promo", channel=channel).status


def test_join_yes_help_stop_start_as_a_customer(topic, run_on_commit, capsys):
    with run_on_commit():
        out = inbound(PHONE, "JOIN PROMO")
    assert "keyword JOIN PROMO applied" in out and "promo (sms): pending" in out
    assert "Replies queued (1)" in out and "[confirmation_prompt]" in out and "worker's output" in out
    assert "outgoing [sms to +*******0123]" in capsys.readouterr().out  # the console provider sent it
    assert consent_status() == ConsentStatus.PENDING

    with run_on_commit():
        out = inbound(PHONE, "yes")
    assert "keyword CONFIRM applied" in out and "promo (sms): active" in out and "[confirmed_reply]" in out
    assert consent_status() == ConsentStatus.ACTIVE

    out = inbound(PHONE, "HELP")
    assert "keyword HELP applied" in out and "No consent changed." in out and "[help_reply]" in out
    assert "Acme promotions. Help: help@acme.example" in out

    out = inbound(PHONE, "Stop")
    assert "keyword STOP applied" in out and "promo (sms): revoked" in out and "[stop_reply]" in out
    assert consent_status() == ConsentStatus.REVOKED

    out = inbound(PHONE, "START")
    assert "keyword START applied" in out and "promo (sms): pending" in out and "[confirmation_prompt]" in out


def test_it_is_the_webhooks_path_recorded_as_the_console(topic):
    inbound(PHONE, "JOIN PROMO", "--channel", "whatsapp")
    assert consent_status("whatsapp") == ConsentStatus.PENDING
    received = Message.objects.get(direction=Message.Direction.INBOUND)
    assert received.channel == "whatsapp" and received.body == "JOIN PROMO" and received.provider_message_id
    event = ConsentEvent.objects.get(kind=EventKind.REQUESTED)
    assert event.source == Source.WHATSAPP_KEYWORD
    assert event.evidence["provider"] == "console"
    assert event.evidence["provider_message_id"] == received.provider_message_id


def test_other_text_is_stored_for_customer_care(topic):
    out = inbound(PHONE, "what time do you open?")
    assert "not a keyword, stored for customer care" in out
    assert Message.objects.get().kind == Message.Kind.INBOUND


@pytest.mark.parametrize("phone", ["hello", "+1", "+99912345678", ""])
def test_a_bad_phone_is_a_clear_error_with_exit_code_2(topic, phone):
    with pytest.raises(CommandError, match="Bad PHONE") as error:
        inbound(phone, "STOP")
    assert error.value.returncode == 2
    assert not Message.objects.exists()


def test_a_bad_phone_exits_2_from_the_shell(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    environ.update(DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings.local")
    done = subprocess.run([sys.executable, "manage.py", "inbound", "not-a-number", "STOP"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Bad PHONE 'not-a-number'" in done.stderr


def test_refused_with_a_real_provider(topic, settings):
    settings.SMS_PROVIDER = "twilio"
    with pytest.raises(CommandError, match="only acts as a customer with the console provider") as error:
        inbound(PHONE, "YES")
    assert error.value.returncode == 2
    inbound(PHONE, "JOIN PROMO", "--channel", "whatsapp")  # WhatsApp is still the console
    assert not Consent.objects.filter(channel="sms").exists()


def test_the_readme_walkthrough_runs_as_written(topic):
    import re
    import shlex

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it as a customer", 1)[1].split("\n## ", 1)[0]
    prefix = re.search(r'M="\.venv/bin/python manage\.py inbound (\S+)"', section)
    steps = [shlex.split(line[3:].split("  #")[0]) for line in section.splitlines() if line.startswith("$M ")]
    assert prefix and len(steps) == 8
    outputs = [inbound(prefix.group(1), *step) for step in steps[:6]]
    assert [("applied" in out, "customer care" in out) for out in outputs] == [(True, False)] * 5 + [(False, True)]
    assert consent_status() == ConsentStatus.PENDING
    maybe, clear = (inbound(prefix.group(1), *step) for step in steps[6:])
    assert "review queue" in maybe and "revocation in other words" in clear and "stop_reply" in clear
    assert consent_status() == ConsentStatus.REVOKED


def test_the_command_records_the_message_and_applies_it_at_once(topic, run_on_commit):
    from consent.models import InboundReceipt

    with run_on_commit():
        inbound(PHONE, "JOIN PROMO")
    receipt = InboundReceipt.objects.get()
    assert (receipt.provider, receipt.intent, receipt.outcome) == ("console", "none", "applied")
    assert receipt.applied_at is not None
