"""A real Redis for the inbound fallback's tests: REDIS_URL if set, else db 6 on 127.0.0.1, each test
under a key of its own (deleted afterwards). Skipped without a Redis server."""

import os
import socket
import threading
import uuid

import pytest
import redis

from consent.intake import fallback
from consent.webhooks.accepted import RECORD
from consent.webhooks.views import twilio_inbound_record

URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/6"


@pytest.fixture
def fallback_redis(settings):
    """settings pointing the fallback at a live Redis and a fresh key; yields the Redis client."""
    client = redis.Redis.from_url(URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {URL}")
    settings.REDIS_URL = URL
    settings.INBOUND_FALLBACK_KEY = f"test-fallback-{uuid.uuid4().hex}"
    yield client
    for key in client.scan_iter(match=settings.INBOUND_FALLBACK_KEY + "*"):
        client.delete(key)


@pytest.fixture
def silent_server():
    """The URL of a TCP server that accepts connections and never answers (a Redis that hangs)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    listener.close()
    for sock in accepted:
        sock.close()


def closed_port_url() -> str:
    """A Redis URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def keep_twilio_inbound(form) -> str:
    """What the webhook keeps of a verified Twilio inbound form while the database cannot be reached: its stream id."""
    record = twilio_inbound_record(form)
    return fallback.fallback_append([(RECORD, record.to_json())])[0]
