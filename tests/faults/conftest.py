"""Fault-injection helpers: a private redis-server, worker and beat processes, a TCP proxy that
can cut the database away. Every process is started and stopped by the test that needs it.

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

import pytest
from django.db import connection

from tests.broadcasts.conftest import consented  # noqa: F401  (fixture: contacts with a current consent)
from tests.broadcasts.test_worker import Worker
from tests.plugins.worker import ROOT, _database_url

PRIVATE_REDIS_PORT = 6390


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
    """A redis-server of the test's own on a spare port (never the shared one on 6379)."""

    def __init__(self, port, workdir):
        self.port, self.workdir, self.process = port, workdir, None
        self.url = f"redis://127.0.0.1:{port}"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
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
def private_redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = RedisServer(PRIVATE_REDIS_PORT, tmp_path)
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
