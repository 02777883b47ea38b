"""The lifecycle's one hand-written statement: a claim's worth of `sent` outcomes in one UPDATE.

Why not the ORM: a broadcast records up to a claim's worth of rows (32 by default, 64 in the
benchmark) at a time, each with its own provider id. `bulk_update` builds a CASE per field and
row, and a conditional per-row `update()` costs one statement and one compile per row: at 1,400
delivered/s (bench/broadcast.py --smoke, 0 ms), per-row updates took about a fifth of a worker's
CPU. This one statement is compiled once per model and row count, and works on both stores
(PostgreSQL, and SQLite ≥ 3.35 for UPDATE … FROM and RETURNING).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection

logger = logging.getLogger(__name__)

_statements: dict[tuple, str] = {}


def _statement(model, rows: int, awaiting: tuple[str, ...]) -> str:
    key = (connection.vendor, model, rows, awaiting)
    sql = _statements.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        meta = model._meta
        column = {name: quote(meta.get_field(name).column) for name in
                  ("status", "status_at", "error_code", "error_message", "sent_at", "provider_message_id")}
        pk = quote(meta.pk.column)
        states = ", ".join(["%s"] * len(awaiting))
        recorded = f"NULLIF(d.{column['provider_message_id']}, '')"
        # The send's outcome lands only on a row still awaiting it, and whose recorded provider id (a
        # faster callback's) is the same: any other status is newer news. When it went (`sent_at`) is
        # the send's to say. Every right-hand side reads the row as it was.
        agrees = f"COALESCE({recorded}, v.column2) = v.column2"
        takes = f"d.{column['status']} IN ({states}) AND {agrees}"
        sql = (
            f"UPDATE {quote(meta.db_table)} AS d SET "
            f"{column['status']} = CASE WHEN {takes} THEN %s ELSE d.{column['status']} END, "
            f"{column['status_at']} = CASE WHEN {takes} THEN %s ELSE d.{column['status_at']} END, "
            f"{column['error_code']} = CASE WHEN {takes} THEN '' ELSE d.{column['error_code']} END, "
            f"{column['error_message']} = CASE WHEN {takes} THEN '' ELSE d.{column['error_message']} END, "
            f"{column['sent_at']} = %s, "
            f"{column['provider_message_id']} = COALESCE({recorded}, v.column2) "
            f"FROM (VALUES {', '.join(['(%s, %s)'] * rows)}) AS v "
            f"WHERE d.{pk} = v.column1 RETURNING {pk}, {column['provider_message_id']}"
        )
        _statements[key] = sql
    return sql


def mark_sent(model, rows: list[tuple[int, str]], now: datetime, *, sent: str, awaiting: tuple[str, ...]) -> None:
    """`sent` with its provider id for each (pk, provider id), where the row still awaits the outcome."""
    awaiting = tuple(str(status) for status in awaiting)
    takes = [*awaiting]
    params = [*takes, str(sent), *takes, now, *takes, *takes, now]  # in the statement's order
    for pk, provider_id in rows:
        params += [pk, provider_id]
    with connection.cursor() as cursor:
        cursor.execute(_statement(model, len(rows), awaiting), params)
        recorded = dict(cursor.fetchall())
    for pk, provider_id in rows:
        if pk in recorded and recorded[pk] != provider_id:
            logger.warning("%s %s: the provider answered %s but a status callback recorded %s; kept that one",
                           model._meta.model_name, pk, provider_id, recorded[pk])
