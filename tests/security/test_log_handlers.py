"""Every handler masks, and each line is written once: Django's console, runserver's and gunicorn's logs, beat.

The servers are real processes on a free loopback port; the assertions read what they wrote.
"""

import io
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+14155550123"
PHONE_DIGITS = PHONE[1:]
TOKEN = "Zm9vYmFyLWEtY29uZmlybWF0aW9uLXRva2Vu.abc-DEF_123"
PATHS = [f"/api/v1/contacts/{PHONE}/", f"/api/v1/contacts/?phone=%2B{PHONE_DIGITS}", f"/optin/confirm/{TOKEN}/"]


def assert_masked(text):
    assert PHONE_DIGITS not in text, f"full number in the log:\n{text}"
    assert TOKEN not in text and TOKEN[:20] not in text, f"token in the log:\n{text}"


@pytest.fixture
def every_handler():
    """What every stream handler of every logger writes, Django's own included: every_handler.getvalue()."""
    loggers = [logging.getLogger()] + [logger for logger in logging.getLogger().manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    handlers = {h for logger in loggers for h in logger.handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)}
    buffer = io.StringIO()
    previous = [(h, h.setStream(buffer)) for h in handlers]
    try:
        yield buffer
    finally:
        for handler, stream in previous:
            if stream is not None:
                handler.setStream(stream)


@pytest.mark.parametrize("debug", [True, False])
def test_one_bad_request_makes_one_line(marketer_client, topic, settings, every_handler, debug):
    settings.DEBUG = debug
    response = marketer_client.post("/api/v1/optins/", {"phone": PHONE, "topic": "nope", "channel": "sms"},
                                    format="json")
    assert response.status_code == 400
    lines = [line for line in every_handler.getvalue().splitlines() if "Bad Request" in line]
    assert len(lines) == 1, lines


def test_djangos_request_warnings_are_masked_in_development(auditor_client, settings, every_handler):
    settings.DEBUG = True
    assert auditor_client.get(f"/api/v1/contacts/{PHONE}/").status_code == 404
    log = every_handler.getvalue()
    assert log.count("Not Found") == 1 and "/api/v1/contacts/+*******0123/" in log
    assert_masked(log)


def test_the_broadcast_tick_logs_at_debug_other_beat_lines_at_info(every_handler):
    beat = logging.getLogger("celery.beat")
    beat.info("Scheduler: Sending due task %s (%s)", "broadcasts-tick", "broadcasts.tasks.broadcasts_tick_task")
    logging.getLogger("celery.worker.strategy").info("Task %(name)s[%(id)s] received",
                                                     {"name": "broadcasts.tasks.broadcasts_tick_task", "id": "1"})
    logging.getLogger("celery.app.trace").info("Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return)r",
                                               {"name": "broadcasts.tasks.broadcasts_tick_task", "id": "1",
                                                "runtime": 0.01, "return": {}})
    beat.info("Scheduler: Sending due task %s (%s)", "messages-upkeep", "consent.tasks.messages_upkeep_task")
    log = every_handler.getvalue()
    assert "tick" not in log
    assert "Sending due task messages-upkeep" in log


def test_the_tick_is_shown_at_debug_when_debug_is_on(every_handler):
    beat = logging.getLogger("celery.beat")
    previous = beat.level
    beat.setLevel(logging.DEBUG)
    try:
        beat.info("Scheduler: Sending due task %s (%s)", "broadcasts-tick", "broadcasts.tasks.broadcasts_tick_task")
    finally:
        beat.setLevel(previous)
    assert re.search(r"DEBUG celery\.beat Scheduler: Sending due task broadcasts-tick", every_handler.getvalue())


# --- real processes ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(tmp_path, **extra):
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")}
    environ.update(DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings.local", PYTHONUNBUFFERED="1",
                   **extra)
    return environ


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A migrated SQLite database for the servers (the opt-in page reads its tables)."""
    path = tmp_path_factory.mktemp("server-data")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=server_env(path),
                   check=True, timeout=300)
    return path


def wait_for_line(stream, marker, seen):
    """Read a server's output until `marker` shows, keeping what was read (access lines follow the response)."""
    for line in stream:
        seen.append(line)
        if marker in line:
            return
    raise AssertionError("the server stopped before it listened:\n" + "".join(seen))


def get(port, path, **headers):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def stop(process):
    process.terminate()
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return out, err


def test_runserver_access_log_is_masked(data_dir):
    port = free_port()
    process = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                               cwd=ROOT, env=server_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    seen, access = [], []
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        wait_for_line(process.stdout, "Quit the server with", seen)
        statuses = [get(port, path, Referer=f"http://127.0.0.1:{port}/optin/confirm/{TOKEN}/") for path in PATHS]
        wait_for_line(process.stderr, '"GET /optin/confirm/', access)
    finally:
        watchdog.cancel()
        out, err = stop(process)
    err = "".join(access) + err
    log = "".join(seen) + out + err
    assert all(status < 500 for status in statuses), (statuses, log)
    assert '"GET /api/v1/contacts/+*******0123/ HTTP/1.1"' in err, err  # runserver's own access line
    assert '"GET /optin/confirm/[masked]/ HTTP/1.1"' in err, err
    assert_masked(log)


def test_gunicorn_access_and_error_logs_are_masked(data_dir):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
                                "--workers", "1", "--timeout", "60", "--no-control-socket"],
                               cwd=ROOT, env=server_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    seen, access = [], []
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        wait_for_line(process.stderr, "Booting worker", seen)
        statuses = [get(port, path, Referer=f"http://127.0.0.1:{port}/optin/confirm/{TOKEN}/") for path in PATHS]
        # Requests gunicorn refuses are written to its error log, request line or header included.
        for refused in (f"GET /optin/confirm/{TOKEN}/\x01 HTTP/1.1\r\n\r\n",
                        f"GET / HTTP/1.1\r\nX-Phone {PHONE}\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
                raw.sendall(refused.encode())
                assert raw.recv(4096).startswith(b"HTTP/1.1 400")
        wait_for_line(process.stdout, '"GET /optin/confirm/', access)
    finally:
        watchdog.cancel()
        out, err = stop(process)
    out, err = "".join(access) + out, "".join(seen) + err
    assert all(status < 500 for status in statuses), (statuses, out, err)
    assert '"GET /api/v1/contacts/+*******0123/ HTTP/1.1" 40' in out, out  # gunicorn's access line
    assert '"GET /optin/confirm/[masked]/ HTTP/1.1"' in out, out
    assert "Invalid HTTP request line: 'GET /optin/confirm/[masked]/" in err, err
    assert "Invalid HTTP Header: 'X-Phone +*******0123'" in err, err
    assert_masked(out + err)


def test_publishing_on_the_embedded_broker_warns_nothing(tmp_path):
    """kombu printed "No hostname was supplied" on every publish to `filesystem://`."""
    script = ("import django; django.setup()\n"
              "from django.conf import settings\n"
              "from config.celery import app\n"
              "app.send_task('consent.tasks.messages_upkeep_task')\n"
              "app.send_task('consent.tasks.messages_upkeep_task')\n"
              "print(settings.CELERY_BROKER_URL)\n")
    for url in (None, "filesystem://localhost/"):  # the default, and the value to set it to
        environ = server_env(tmp_path, **({"CELERY_BROKER_URL": url} if url else {}))
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environ, capture_output=True, text=True,
                              timeout=60, check=True)
        assert done.stdout.strip() == "filesystem://localhost/"
        assert "No hostname" not in done.stderr, done.stderr
        assert len(list((tmp_path / "broker" / "queue").iterdir())) == 2  # the tasks were published
        for message in (tmp_path / "broker" / "queue").iterdir():
            message.unlink()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_workers_log_is_masked(topic, celery_worker_process):
    from consent import services
    from consent.models import Message, Source

    services.optin_request(phone=PHONE, topic=topic, channel="sms", source=Source.API, evidence={})
    celery_worker_process(lambda: Message.objects.filter(kind=Message.Kind.CONFIRMATION_PROMPT,
                                                         status=Message.Status.SENT).exists(), what="the prompt")
    celery_worker_process(lambda: "console provider" in celery_worker_process.log.read_text(), what="its log line")
    log = celery_worker_process.log.read_text()
    assert "[sms to +*******0123]" in log and "/optin/confirm/[masked]/" in log
    assert PHONE_DIGITS not in log and not re.search(r"/optin/confirm/(?!\[)", log)
