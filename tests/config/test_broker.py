"""The Redis broker: kombu's own transport, publishing every message and surviving lost connections."""

import os
import uuid

import pytest
from kombu import Connection
from kombu.transport import redis as kombu_redis

BROKER = os.environ.get("CELERY_BROKER_URL", "")
pytestmark = pytest.mark.skipif(not BROKER.startswith("redis://"), reason="needs a Redis broker (CELERY_BROKER_URL)")

QUEUE = "test-config-broker"


@pytest.fixture
def connection():
    name = f"test-broker-{uuid.uuid4().hex[:8]}"  # names this test's Redis connections, to drop them
    with Connection(BROKER, transport_options={"client_name": name}) as conn:
        conn.default_channel.client.delete(QUEUE)
        yield conn
        conn.default_channel.client.delete(QUEUE)


def _receive(connection, count: int) -> list:
    with connection.SimpleQueue(QUEUE) as queue:
        received = [queue.get(timeout=2) for _ in range(count)]
        for message in received:
            message.ack()
    return [m.payload["n"] for m in received]


def test_the_application_publishes_through_kombus_own_redis_transport():
    from config.celery import app

    assert app.conf.broker_transport is None  # chosen by kombu from the redis:// URL
    with app.connection_for_write() as conn:
        assert type(conn.transport) is kombu_redis.Transport
        assert type(conn.default_channel) is kombu_redis.Channel


def test_every_published_message_arrives_in_order(connection):
    producer = connection.Producer(connection.default_channel)
    declare = [connection.SimpleQueue(QUEUE).queue]
    for number in range(20):
        producer.publish({"n": number}, routing_key=QUEUE, declare=declare)
    assert _receive(connection, 20) == list(range(20))


def test_publishing_survives_the_server_dropping_its_connections(connection):
    """What a Redis restart does to the web process's pooled connections: the next publish reconnects."""
    producer = connection.Producer(connection.default_channel)
    declare = [connection.SimpleQueue(QUEUE).queue]
    producer.publish({"n": 0}, routing_key=QUEUE, declare=declare)
    name = connection.transport_options["client_name"]
    with Connection(BROKER) as admin:
        server = admin.default_channel.client
        ours = [c["id"] for c in server.client_list() if c.get("name") == name]
        assert ours
        for client_id in ours:
            server.client_kill_filter(_id=client_id)
    producer.publish({"n": 1}, routing_key=QUEUE, declare=declare)
    assert _receive(connection, 2) == [0, 1]
