"""The Redis broker transport: kombu's own, with one publishing client per channel pool."""

import os

import pytest
import redis
from kombu import Connection

from config.broker import Channel, Transport

BROKER = os.environ.get("CELERY_BROKER_URL", "")
pytestmark = pytest.mark.skipif(not BROKER.startswith("redis://"), reason="needs a Redis broker (CELERY_BROKER_URL)")

QUEUE = "test-config-broker"


@pytest.fixture
def connection():
    with Connection(BROKER, transport="config.broker:Transport") as conn:
        yield conn
        conn.default_channel.client.delete(QUEUE)


def _clients_built(monkeypatch) -> list:
    built = []
    original = redis.Redis.__init__

    def init(self, *args, **kwargs):
        built.append(kwargs.get("connection_pool"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", init)
    return built


def test_the_application_publishes_through_this_transport():
    from config.celery import app

    assert app.conf.broker_transport == "config.broker:Transport"
    with app.connection_for_write() as conn:
        assert isinstance(conn.default_channel, Channel)
        assert isinstance(conn.transport, Transport)


def test_publishing_reuses_one_client_and_every_message_arrives(connection, monkeypatch):
    channel = connection.default_channel
    channel.client.delete(QUEUE)
    producer = connection.Producer(channel)
    producer.publish({"n": 0}, routing_key=QUEUE, declare=[connection.SimpleQueue(QUEUE).queue])
    built = _clients_built(monkeypatch)
    for number in range(1, 20):
        producer.publish({"n": number}, routing_key=QUEUE)
    assert built == []  # kombu's own channel builds one per message
    with connection.SimpleQueue(QUEUE) as queue:
        received = [queue.get(timeout=2) for _ in range(20)]
        for message in received:
            message.ack()
    assert [m.payload["n"] for m in received] == list(range(20))


def test_a_new_pool_gets_a_new_client(connection):
    channel = connection.default_channel
    with channel.conn_or_acquire() as first, channel.conn_or_acquire() as again:
        assert first is again
    channel._pool = None  # what kombu does when it drops its pool (after a connection error)
    with channel.conn_or_acquire() as fresh:
        assert fresh is not first
        assert fresh.connection_pool is channel.pool
        assert fresh.ping()


def test_the_consumer_keeps_its_own_client(connection):
    channel = connection.default_channel
    with channel.conn_or_acquire() as publishing:
        assert channel.client is not publishing
