"""Many writers at once still make one valid chain: threads with their own connections, and processes."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection, connections

from consent import services
from consent.models import ConsentEvent, Source
from consent.verification import verify_chain
from tests.plugins.worker import _database_url

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.django_db(transaction=True)


def _writer(topic, base, count, errors, outbox):
    try:
        for i in range(count):
            phone = f"+1415555{base + i:04d}"
            result = services.optin_request(phone=phone, topic=topic, channel="sms", source=Source.API, evidence={"i": i})
            if i % 2 == 0:  # the prompt was handed over on commit (tasks run eagerly)
                services.optin_confirm_by_token(token=outbox.token_for(phone), source=Source.WEB_FORM)
            if i % 3 == 0:
                services.consent_revoke(contact=result.consent.contact, channel="sms", source=Source.SMS_KEYWORD)
    except Exception as exc:  # reported to the main thread
        errors.append(exc)
    finally:
        connections.close_all()


def test_threads_appending_at_once_make_one_chain(topic, outbox):
    threads, errors, per_thread = [], [], 15
    for n in range(6):
        threads.append(threading.Thread(target=_writer, args=(topic, n * 100, per_thread, errors, outbox)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    report = verify_chain()
    assert report.ok, report
    seqs = list(ConsentEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    # requested + confirmation_sent per request, confirmed for evens, revoked for every third.
    expected = 6 * sum(2 + (i % 2 == 0) + (i % 3 == 0) for i in range(per_thread))
    assert len(seqs) == expected


SCRIPT = """
import django, sys
django.setup()
from consent import services
from consent.models import Source, Topic
from tests.prompts import Outbox
topic = Topic.objects.get(slug="promo")
base, count = int(sys.argv[1]), int(sys.argv[2])
outbox = Outbox()
with outbox.record():
    for i in range(count):
        phone = f"+1415556{base + i:04d}"
        services.optin_request(phone=phone, topic=topic, channel="sms", source=Source.API)
        services.optin_confirm_by_token(token=outbox.token_for(phone), source=Source.WEB_FORM)
"""


def test_processes_appending_at_once_make_one_chain(topic):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.worker_test",
           "DATABASE_URL": _database_url(connection.settings_dict), "PYTHONPATH": str(ROOT)}
    env["CELERY_TASK_ALWAYS_EAGER"] = "1"
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(n * 100), "20"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
    report = verify_chain()
    assert report.ok, report
    # requested, confirmation_sent (tasks run eagerly in these processes) and confirmed per request.
    assert report.events == ConsentEvent.objects.count() == 4 * 20 * 3
