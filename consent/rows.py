"""Row writes and locking reads for the hot paths, with their SQL built once per model.

An inbound STOP or YES is a handful of single-row statements. Through the ORM, compiling
each one costs several times what the database spends running it, so the paths every
webhook takes (storing messages, confirming and revoking consents, appending to the
ledger) build their statement text once per model and field list, and prepare values
with the model fields' own `pre_save` / `get_db_prep_save`: what lands in the database is
exactly what `Model.save()` would write. No model signals are sent (none are used here).

Everything else keeps using the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model
from django.utils import timezone

_STATEMENTS: dict[tuple, object] = {}  # statement texts, column lists and readers, built once


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _insert_statement(model: type[Model], rows: int = 1) -> tuple[str, tuple]:
    key = ("insert", connection.vendor, model, rows)
    statement = _STATEMENTS.get(key)
    if statement is None:
        meta = model._meta
        fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
        row = f"({', '.join(['%s'] * len(fields))})"
        statement = (
            f"INSERT INTO {_quoted(meta.db_table)} ({', '.join(_quoted(f.column) for f in fields)}) "
            f"VALUES {', '.join([row] * rows)} RETURNING {_quoted(meta.pk.column)}",
            fields,
        )
        _STATEMENTS[key] = statement
    return statement


def _database():
    """The connection itself: the fields' methods read it many times, and each read through the
    `connection` proxy is a context-local lookup."""
    return connections[DEFAULT_DB_ALIAS]


def _prepared(instance: Model, fields: tuple) -> list:
    db = _database()
    return [f.get_db_prep_save(f.pre_save(instance, True), db) for f in fields]


def insert_values(instance: Model) -> tuple[str, list]:
    """The INSERT … RETURNING pk statement for a new row, and its parameters (auto fields filled in)."""
    sql, fields = _insert_statement(type(instance))
    return sql, _prepared(instance, fields)


def inserted(instance: Model, pk) -> Model:
    """Mark `instance` as the saved row `pk`."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


def insert(instance: Model) -> Model:
    """INSERT a new row for `instance` (primary key from the database) and return it, saved."""
    return insert_many([instance])[0]


def insert_many(instances: Sequence[Model]) -> list[Model]:
    """INSERT new rows of one model in one statement, in order, and return them saved.

    If any row is refused (a unique constraint), none is written. The keys come from one
    sequence (or rowid) in VALUES order, so sorted keys are matched to the rows in order,
    whatever order RETURNING lists them in.
    """
    sql, fields = _insert_statement(type(instances[0]), len(instances))
    params = [value for instance in instances for value in _prepared(instance, fields)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        keys = sorted(row[0] for row in cursor.fetchall())
    return [inserted(instance, pk) for instance, pk in zip(instances, keys, strict=True)]


def _update_statement(model: type[Model], names: tuple[str, ...]) -> tuple[tuple[str, str], tuple]:
    key = ("update", connection.vendor, model, names)
    statement = _STATEMENTS.get(key)
    if statement is None:
        meta = model._meta
        fields = tuple(meta.get_field(name) for name in names)
        assignments = ", ".join(f"{_quoted(f.column)} = %s" for f in fields)
        statement = ((f"UPDATE {_quoted(meta.db_table)} SET ", assignments), fields)
        _STATEMENTS[key] = statement
    return statement


def update(instances: Sequence[Model], fields: Iterable[str], each: Iterable[str] = ()) -> None:
    """Write `fields` of every instance (an auto_now field named gets one instant), one UPDATE per distinct set of values.

    Callers give instances that were just changed alike (the same status, instant and
    source for every consent of a STOP), so this is usually a single UPDATE … WHERE pk IN.
    Fields in `each` differ from row to row (a pointer to each row's own event): they are
    written in the same statement, as a CASE on the primary key.
    """
    if not instances:
        return
    model = type(instances[0])
    each = tuple(each)
    sql, prepared_fields = _update_statement(model, tuple(fields))
    now = timezone.now()
    db = _database()
    varying = tuple(model._meta.get_field(name) for name in each)
    groups: dict[tuple, list] = {}
    for instance in instances:
        for field in prepared_fields:
            if getattr(field, "auto_now", False):
                setattr(instance, field.attname, now)  # one instant for the whole call, as a queryset update
        values = tuple(f.get_db_prep_save(getattr(instance, f.attname), db) for f in prepared_fields)
        groups.setdefault(_hashable(values), [values, []])[1].append(instance)
    pk = _quoted(model._meta.pk.column)
    with connection.cursor() as cursor:
        for values, members in groups.values():
            cases, case_params = [], []
            for field in varying:
                cases.append(f"{_quoted(field.column)} = CASE {pk}{' WHEN %s THEN %s' * len(members)} END")
                for instance in members:
                    case_params += [instance.pk, field.get_db_prep_save(getattr(instance, field.attname), db)]
            assignments = ", ".join([sql[1], *cases]) if sql[1] else ", ".join(cases)
            pks = [instance.pk for instance in members]
            cursor.execute(f"{sql[0]}{assignments} WHERE {pk} IN ({', '.join(['%s'] * len(pks))})",
                           [*values, *case_params, *pks])


def _hashable(values: tuple) -> tuple:
    try:
        hash(values)
        return values
    except TypeError:  # an adapted JSON value: such rows are written one by one
        return (id(values),)


def columns(model: type[Model], alias: str) -> str:
    """The SELECT list of every concrete column of `model` under table alias `alias`, in field order."""
    key = ("columns", connection.vendor, model, alias)
    listed = _STATEMENTS.get(key)
    if listed is None:
        listed = _STATEMENTS[key] = ", ".join(f"{alias}.{_quoted(f.column)}" for f in model._meta.concrete_fields)
    return listed


def _readers(model: type[Model]) -> tuple[list[str], list[tuple]]:
    key = ("read", connection.vendor, model)
    readers = _STATEMENTS.get(key)
    if readers is None:
        names, converters = [], []
        for field in model._meta.concrete_fields:
            column = field.get_col(model._meta.db_table)
            names.append(field.attname)
            # The same conversions the ORM applies to what the driver returns (JSON, aware datetimes, ...).
            converters.append((column, [*connection.ops.get_db_converters(column),
                                        *column.get_db_converters(connection)]))
        readers = _STATEMENTS[key] = (names, converters)
    return readers


def fetch(sql: str, params: Sequence, models: Sequence[type[Model]]) -> list[tuple]:
    """Run a SELECT of `columns(model, …)` for each model in turn and build one instance of each per row.

    Columns selected after the models' come back as they are, after the instances in each tuple.
    """
    layouts = [(model, *_readers(model)) for model in models]
    db = _database()
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    out = []
    for row in found:
        instances, start = [], 0
        for model, names, converters in layouts:
            values = list(row[start:start + len(names)])
            start += len(names)
            for index, (column, functions) in enumerate(converters):
                for function in functions:
                    values[index] = function(values[index], column, db)
            instances.append(model.from_db(db.alias, names, values))
        out.append((*instances, *row[start:]))
    return out
