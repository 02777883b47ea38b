"""PostgreSQL connections: Django's own backend and health check find a connection the server ended."""

import pytest
from django.db import close_old_connections, connection, connections

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL backend"),
]


def _terminate(pid: int) -> None:
    import psycopg

    s = connection.settings_dict
    with psycopg.connect(dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"] or "127.0.0.1",
                         port=s["PORT"] or 5432, autocommit=True, connect_timeout=5) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])  # returns once it has ended


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_djangos_backend_with_its_health_check_and_persistent_connections():
    assert connections["default"].settings_dict["ENGINE"] == "django.db.backends.postgresql"
    assert type(connections["default"]).__module__ == "django.db.backends.postgresql.base"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True
    assert connection.settings_dict["CONN_MAX_AGE"] > 0  # kept between requests: hence the check


def test_a_connection_the_server_ended_is_replaced_before_the_next_requests_first_query():
    pid = _backend_pid()
    _terminate(pid)  # a database restart, a terminated backend, an idle timeout

    close_old_connections()  # what every request starts with
    assert _backend_pid() != pid
