"""The PostgreSQL backend's health check: answered on the socket, yet it finds a closed connection."""

import time

import pytest
from django.db import connection, connections, transaction

from config.postgresql.base import DatabaseWrapper

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL backend"),
]


def _server_checks(monkeypatch) -> list:
    """Record every time the check falls back to asking the server (Django's `SELECT 1`)."""
    asked = []
    parent = DatabaseWrapper.__mro__[1]
    original = parent.is_usable

    def select_one(self):
        asked.append(True)
        return original(self)

    monkeypatch.setattr(parent, "is_usable", select_one)
    return asked


def _terminate(pid: int) -> None:
    import psycopg

    s = connection.settings_dict
    with psycopg.connect(dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"] or "127.0.0.1",
                         port=s["PORT"] or 5432, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_the_backend_is_in_use():
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.settings_dict["ENGINE"] == "config.postgresql"


def test_an_idle_live_connection_is_usable_without_a_round_trip(monkeypatch):
    connection.ensure_connection()
    asked = _server_checks(monkeypatch)
    assert connection.is_usable() is True
    assert asked == []


def test_a_connection_the_server_ended_is_not_usable_and_the_request_reconnects():
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    _terminate(pid)
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.02)  # the server's goodbye reaches the socket within moments
    assert connection.is_usable() is False

    # What Django does at the start of a request with CONN_HEALTH_CHECKS: close, then reconnect.
    connection.health_check_enabled, connection.health_check_done = True, False
    connection.close_if_health_check_failed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_closed_connection_is_not_usable():
    connection.ensure_connection()
    connection.connection.close()
    assert connection.is_usable() is False
    connection.close()


def test_inside_a_transaction_the_server_is_asked(monkeypatch):
    asked = _server_checks(monkeypatch)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert connection.is_usable() is True
    assert asked == [True]
