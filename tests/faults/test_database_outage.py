"""The database unavailable for a few seconds while providers post inbound webhooks.

A real web server (gunicorn, one worker) reaches PostgreSQL through a loopback TCP proxy that
the test cuts and restores. While it is cut, a signed Twilio STOP gets a 5xx (so Twilio retries)
and nothing is half-applied; the API answers 503 with Retry-After and /readyz/ says not ready.
Once restored, the provider's redelivery is applied exactly once, however often it comes. The
server's own log of all this carries no full number and no token.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection
from django.http import QueryDict

from consent import services
from consent.models import Consent, ConsentEvent, ConsentStatus, EventKind, Message, Source
from consent.signatures import twilio_signature
from tests.plugins.worker import ROOT
from tests.prompts import deliver_prompts

from .conftest import TcpProxy, on_postgres_and_redis, wait_until  # noqa: F401 — the skipif condition names it

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("not on_postgres_and_redis()", reason="needs PostgreSQL and a Redis broker"),
]

TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
PHONE = "+14155550188"
PUBLIC = "http://testserver"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture
def web_through_proxy(tmp_path, make_user):
    settings_dict = connection.settings_dict
    proxy = TcpProxy(settings_dict.get("HOST") or "127.0.0.1", int(settings_dict.get("PORT") or 5432))
    port = _free_port()
    user = settings_dict.get("USER") or "postgres"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.faults.worker_settings", "PYTHONPATH": str(ROOT),
           "DATABASE_URL": f"postgres://{user}@127.0.0.1:{proxy.port}/{settings_dict['NAME']}",
           "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC, "CELERY_TASK_ALWAYS_EAGER": "true",
           "DJANGO_ALLOWED_HOSTS": "127.0.0.1,testserver"}
    log = tmp_path / "web.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--timeout", "30", "--graceful-timeout", "2"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return _request(base + "/healthz/")[0] == 200
        except OSError:
            return False

    try:
        wait_until(up, 30, "gunicorn to serve /healthz/", [log])
        yield base, proxy, make_user("auditor")[1], log
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        proxy.close()


def _stop_form(sid):
    form = QueryDict(mutable=True)
    form.update({"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32,
                 "From": PHONE, "To": "+15005550006", "Body": "STOP", "NumMedia": "0", "ApiVersion": "2010-04-01"})
    return form


def test_inbound_webhook_during_a_database_outage_is_5xx_then_applied_once(topic, web_through_proxy):
    base, proxy, api_token, log = web_through_proxy
    result = services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API, evidence={"ip": "x"})
    deliver_prompts()  # YES confirms only prompts handed to the provider
    services.optin_confirm_by_reply(contact=result.consent.contact, channel="sms", source=Source.API)
    form = _stop_form("SM" + "d" * 32)
    path = "/webhooks/twilio/inbound/"
    body = form.urlencode().encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio_signature(TOKEN, PUBLIC + path, form), "Host": "testserver"}

    def stop():
        return _request(base + path, body, headers)

    assert _request(base + "/api/v1/topics/", headers={"Authorization": f"Token {api_token}"})[0] == 200
    proxy.cut()
    outage_started = time.monotonic()
    during = [stop() for _ in range(3)]
    api = _request(base + "/api/v1/topics/", headers={"Authorization": f"Token {api_token}"})
    ready = _request(base + "/readyz/")
    assert all(500 <= status < 600 for status, _, _ in during), [(s, b[:200]) for s, b, _ in during]
    assert api[0] == 503 and api[2].get("Retry-After"), api[:2]
    assert ready[0] == 503
    consent = Consent.objects.get(contact__phone=PHONE, channel="sms")
    assert consent.status == ConsentStatus.ACTIVE, "a change was half-applied during the outage"
    assert not Message.objects.filter(direction=Message.Direction.INBOUND).exists()
    time.sleep(max(0.0, 3 - (time.monotonic() - outage_started)))  # "a few seconds"
    proxy.restore()

    def redelivered():
        return stop()[0] == 200

    wait_until(redelivered, 30, "the redelivery to be accepted once the database is back", [log])
    for _ in range(3):  # Twilio may deliver again; nothing changes twice
        assert stop()[0] == 200
    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    assert ConsentEvent.objects.filter(kind=EventKind.REVOKED, contact=consent.contact).count() == 1
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert Message.objects.filter(kind=Message.Kind.STOP_REPLY).count() == 1
    assert _request(base + "/readyz/")[0] == 200
    # What the production process logged through all this (tracebacks included) is masked.
    logged = log.read_text()
    assert "could not be applied" in logged and "Traceback" in logged
    assert PHONE[1:] not in logged and TOKEN not in logged and api_token not in logged
