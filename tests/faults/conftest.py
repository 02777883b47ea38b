"""Fault-injection helpers: a private redis-server (AOF on or off), web (gunicorn), worker and beat
processes, the database refusing every connection (or a TCP proxy that cuts it away), signed Twilio
webhooks. Every process is started and stopped by the test that needs it.

These tests need PostgreSQL and a Redis broker (several processes share one database and one
broker, as in production) and are skipped otherwise.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection
from django.http import QueryDict
from psycopg import sql

from consent.signatures import twilio_signature
from tests.broadcasts.conftest import consented  # noqa: F401  (fixture: contacts with a current consent)
from tests.broadcasts.test_worker import Worker
from tests.plugins.worker import ROOT, _database_url

PRIVATE_REDIS_PORT = 6390
PUBLIC_BASE_URL = "http://testserver"  # what the web process checks webhook signatures against
TWILIO_INBOUND = "/webhooks/twilio/inbound/"


def on_postgres_and_redis() -> bool:
    return connection.vendor == "postgresql" and os.environ.get("CELERY_BROKER_URL", "").startswith("redis")


def wait_until(condition, timeout, what, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    tails = "\n".join(f"--- {log}:\n{Path(log).read_text()[-3000:]}" for log in logs if Path(log).exists())
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}")


class RedisServer:
    """A redis-server of the test's own on a spare port (never the shared one on 6379); with `aof`, an
    append-only file in `workdir` (fsync every second, as docker-compose.yml runs it) kept across restarts."""

    def __init__(self, port, workdir, aof=False):
        self.port, self.workdir, self.process, self.aof = port, workdir, None, aof
        self.url = f"redis://127.0.0.1:{port}"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.aof else "no", "--appendfsync", "everysec", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(self.ping, 10, f"redis-server on {self.port}")
        return self

    def ping(self):
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path, request):
    """A private redis-server; `@pytest.mark.parametrize("private_redis", ["aof"], indirect=True)` turns AOF on."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = RedisServer(PRIVATE_REDIS_PORT, tmp_path, aof=getattr(request, "param", None) == "aof")
    if server.ping():
        pytest.skip(f"port {PRIVATE_REDIS_PORT} is taken")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def celery_sends_to(broker_url, queue):
    """Make this (test) process enqueue on `broker_url` / `queue` instead of running tasks eagerly."""
    from config.celery import app

    keys = ("task_always_eager", "task_default_queue", "broker_url", "broker_write_url", "broker_read_url")
    old = {key: app.conf[key] for key in keys}

    def reset_pools():
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.update(task_always_eager=False, task_default_queue=queue, broker_url=broker_url,
                    broker_write_url=broker_url, broker_read_url=broker_url)
    reset_pools()
    try:
        yield app
    finally:
        # Not force_close_all(): kombu keeps one pool per URL for the process, and a closed one
        # would be handed to whoever asks for that URL next.
        app.conf.update(old)
        reset_pools()


@pytest.fixture
def processes(settings, tmp_path):
    """processes.env (for subprocesses), .worker(), .beat(): started here, all stopped at the end."""

    class Processes:
        def __init__(self):
            self.queue = f"fault-{uuid.uuid4().hex[:8]}"
            self.log = tmp_path / "processes.log"
            self.started = []
            self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.faults.worker_settings", "CELERY_QUEUE": self.queue,
                        "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "DJANGO_ALLOWED_HOSTS": "127.0.0.1,testserver",
                        # Each test its own inbound fallback stream on the shared Redis.
                        "INBOUND_FALLBACK_KEY": f"fault-fallback-{uuid.uuid4().hex[:8]}",
                        "DATABASE_URL": _database_url(connection.settings_dict), "PYTHONPATH": str(ROOT),
                        "BROADCAST_SMS_RATE_PER_SECOND": "0", "BROADCAST_WHATSAPP_RATE_PER_SECOND": "0",
                        "BROADCAST_BATCH_SIZE": "20", "BROADCAST_CLAIM_SIZE": "4", "BROADCAST_SEND_CONCURRENCY": "4",
                        "CELERY_VISIBILITY_TIMEOUT": "5"}
            for name in ("SMS_PROVIDER", "WHATSAPP_PROVIDER", "TWILIO_API_BASE", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
                         "TWILIO_FROM_NUMBER", "WHATSAPP_API_BASE", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID"):
                value = getattr(settings, name, None)
                if value:
                    self.env[name] = str(value)

        def worker(self):
            worker = Worker(self.queue, self.env, self.log).start()
            self.started.append(worker)
            return worker

        def web(self, workers=2, threads=4):
            web = Web(None, self.env, self.log).start(workers=workers, threads=threads)
            self.started.append(web)
            return web

        def beat(self, name):
            beat = Beat(self.env, self.log, tmp_path / f"beat-{name}").start()
            self.started.append(beat)
            return beat

        def stop_all(self):
            # The test has made its assertions: no need for a warm shutdown (it waits for the
            # tasks in hand), kill each process group outright.
            for process in reversed(self.started):
                if process.process and process.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.process.pid, signal.SIGKILL)
                    process.process.wait(10)

    procs = Processes()
    try:
        yield procs
    finally:
        procs.stop_all()


class Beat(Worker):
    """`celery beat` with its own schedule file, in its own process group."""

    def __init__(self, env, log, schedule):
        super().__init__(queue=None, env=env, log=log)
        self.schedule = schedule

    def start(self):
        self.process = subprocess.Popen(
            # DEBUG: the tick's "Sending due task" lines are logged at DEBUG, and the tests count them.
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=DEBUG", "-s", str(self.schedule)],
            cwd=ROOT, env=self.env, stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
        return self


class TcpProxy:
    """A loopback TCP proxy to a server that the test can cut (drop every connection, refuse new
    ones) and restore: the database "unavailable for a few seconds"."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.pairs = []
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self):
        self.open.clear()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

    def restore(self):
        self.open.set()

    def close(self):
        self.stopping = True
        self.cut()
        self.listener.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Web(Worker):
    """gunicorn serving the service with the product's gunicorn.conf.py, in its own process group."""

    def start(self, workers=2, threads=4):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers",
             str(workers), "--worker-class", "gthread", "--threads", str(threads), "--timeout", "30",
             "--graceful-timeout", "2", "--backlog", "4096"],
            cwd=ROOT, env=self.env, stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)

        def up():
            with contextlib.suppress(requests.RequestException):
                return requests.get(self.url + "/healthz/", timeout=2).status_code == 200
            return False

        wait_until(up, 60, "gunicorn to serve /healthz/", [self.log])
        return self


def stop_form(phone, sid, body="STOP"):
    form = QueryDict(mutable=True)
    form.update({"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32,
                 "From": phone, "To": "+15005550006", "Body": body, "NumMedia": "0", "ApiVersion": "2010-04-01"})
    return form


def signed_twilio(token, form, path=TWILIO_INBOUND):
    """(body, headers) of the form as Twilio posts it to PUBLIC_BASE_URL + path."""
    return form.urlencode().encode(), {"Content-Type": "application/x-www-form-urlencoded", "Host": "testserver",
                                       "X-Twilio-Signature": twilio_signature(token, PUBLIC_BASE_URL + path, form)}


def post_twilio(session, web, token, form, path=TWILIO_INBOUND, timeout=20):
    body, headers = signed_twilio(token, form, path)
    return session.post(web.url + path, data=body, headers=headers, timeout=timeout)


@contextlib.contextmanager
def database_refused():
    """The test database refuses every connection (ALLOW_CONNECTIONS false, every backend but this test's
    own terminated), as a database that is down does; allowed again on exit."""
    settings_dict = connection.settings_dict
    name = settings_dict["NAME"]
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own = cursor.fetchone()[0]
    admin = psycopg.connect(host=settings_dict.get("HOST") or "127.0.0.1", port=settings_dict.get("PORT") or 5432,
                            user=settings_dict.get("USER") or "postgres", password=settings_dict.get("PASSWORD") or None,
                            dbname="postgres", autocommit=True, connect_timeout=5)
    try:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                      (name, own))
        yield
    finally:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
        admin.close()


def burst(web, token, forms, seconds, threads=48):
    """Post every form within `seconds` (evenly scheduled, from `threads` keep-alive clients); for each,
    (status or the transport error, seconds from its scheduled instant to the answer)."""
    start = time.monotonic() + 0.5
    step = seconds / max(1, len(forms))
    results = [None] * len(forms)

    def client(offset):
        session = requests.Session()
        for i in range(offset, len(forms), threads):
            due = start + i * step
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                status = post_twilio(session, web, token, forms[i], timeout=30).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            results[i] = (status, time.monotonic() - due)

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results
