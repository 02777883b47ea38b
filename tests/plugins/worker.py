"""A real Celery worker process against the test database and the configured broker."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def _database_url(settings_dict) -> str:
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    if engine.endswith("postgresql"):
        user = settings_dict.get("USER") or "postgres"
        password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"
    raise RuntimeError(f"no worker support for {engine}")


@pytest.fixture
def celery_worker_process(transactional_db, settings, tmp_path):
    """Start `celery -A config worker` on a private queue; tasks sent by the test go to it.

    Yields a function that waits until a condition holds (polling the database), failing
    with the worker's log if it does not within the timeout.
    """
    from django.db import connection

    from config.celery import app

    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.worker_test",
        DATABASE_URL=_database_url(connection.settings_dict),
        CELERY_QUEUE=queue,
        PYTHONPATH=str(ROOT),
    )
    for name in ("SMS_PROVIDER", "WHATSAPP_PROVIDER", "TWILIO_API_BASE", "WHATSAPP_API_BASE", "TWILIO_ACCOUNT_SID",
                 "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID",
                 "PUBLIC_BASE_URL"):
        value = getattr(settings, name, None)
        if value:
            env[name] = str(value)
    log = tmp_path / "worker.log"
    log_file = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=2",
         "--pool=prefork", "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )
    old = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = queue
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def wait_for(condition, timeout=30.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")

    wait_for.process = process
    wait_for.log = log
    wait_for.queue = queue
    try:
        yield wait_for
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = old
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log_file.close()
