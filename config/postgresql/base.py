"""PostgreSQL: Django's backend, with a health check that costs no round trip.

With CONN_HEALTH_CHECKS, Django asks a reused connection `SELECT 1` before the first query
of every request: a round trip, and a statement for the server, on every webhook. An idle
connection has nothing to read, so the same question is answered on the socket itself: when
it is readable (or hung up), the server has closed the connection (restart, terminated
backend, idle timeout, a proxy that went away) or sent an error, and Django reconnects
before the request's first query. A peer that vanished without closing anything is found
by the request's first statement, as it would have been by `SELECT 1`.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != pq.TransactionStatus.IDLE:
            return super().is_usable()  # mid-transaction: the server may owe us data; ask it
        try:
            poller = select.poll()
            poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
            return not poller.poll(0)  # POLLHUP and POLLERR are reported whatever was asked
        except (OSError, ValueError):
            return False
