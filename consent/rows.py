"""Consent's hand-written SQL (its one SQL module): the two reads every inbound STOP and YES makes, the
one UPDATE of the consents a YES confirms, the ledger append and the insert of a webhook's messages.

Each statement is kept for what it saves over its ORM form, measured by bench/consent_statements.py
(hand-written and ORM alternately, same sitting, PostgreSQL, CPU of the calling process per call),
set against the web CPU of a keyword webhook in bench/inbound.py (8.5 ms for a YES, 8.9 ms for a
STOP): a statement stays if it saves more than 5 % of that (about 0.43 ms), alone or as one unit of
work with the statements it always runs with (the ledger append: the head's lock, the event's INSERT
and the head's move). Rows are built the
documented way (`Model.from_db`) after the ORM's own converters, so they read exactly as through
the ORM; rows inserted by hand are returned the same way. One statement is here for what it does, not
for speed: taking ledger keys before their events' INSERT (`ids_reserve`). Everything else in consent uses the ORM; the
statements measured and retired (a STOP's consent and token updates, the suppression check) are named
at their ORM call sites with their figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model
from django.utils import timezone

from .models import Consent, Contact, Suppression, Topic, TopicText

_STATEMENTS: dict[tuple, object] = {}  # statement texts, column lists and readers, built once


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _database():
    """The connection itself: the fields' methods read it many times, and each read through the
    `connection` proxy is a context-local lookup."""
    return connections[DEFAULT_DB_ALIAS]


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

    Callers give instances that were just changed alike (the same status, instant and source
    for every consent a YES confirms), so this is usually a single UPDATE … WHERE pk IN. Fields
    in `each` differ from row to row (a pointer to each row's own event): they are written in the
    same statement, as a CASE on the primary key.

    A YES is one UPDATE of its consents. bench/consent_statements.py: 175 µs CPU per call, the ORM's
    one-statement form (bulk_update, a CASE per field) 1753 µs: saves 1578 µs, 18.6 % of a YES
    webhook's web CPU. (One ORM update() per consent instead: 358 µs for one consent, 171 µs more,
    and one statement more for each further topic the YES confirms.)
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


# --- the statements of consent's hot paths --------------------------------------------------
# Table and column names come from each model's Meta, quoted by the backend.


def _table(model: type[Model]) -> str:
    return _quoted(model._meta.db_table)


def _column(model: type[Model], name: str, alias: str = "") -> str:
    column = _quoted(model._meta.get_field(name).column)
    return f"{alias}.{column}" if alias else column


def contact_with_suppression(pseudonym: str) -> tuple[Contact, bool] | None:
    """The contact with this pseudonym and whether it is on the suppression list, in one statement.

    Every inbound webhook's first read. bench/consent_statements.py: 116 µs CPU per call, the ORM
    form (annotate(Exists(...)).filter(...)) 693 µs: saves 577 µs, 6.8 % of a YES webhook's web CPU.
    """
    key = ("contact_with_suppression", connection.vendor)
    sql = _STATEMENTS.get(key)
    if sql is None:
        pseudonym_c, pseudonym_s = _column(Contact, "phone_pseudonym", "c"), _column(Suppression, "phone_pseudonym", "s")
        sql = _STATEMENTS[key] = (
            f"SELECT {columns(Contact, 'c')}, EXISTS (SELECT 1 FROM {_table(Suppression)} s WHERE {pseudonym_s} = {pseudonym_c}) "
            f"FROM {_table(Contact)} c WHERE {pseudonym_c} = %s")
    found = fetch(sql, [pseudonym], (Contact,))
    return (found[0][0], bool(found[0][1])) if found else None


def consents_locked(*, contact_id: int, channel: str, statuses: Sequence[str], topic_id: int | None = None,
                    confirm_by_from=None, prompted: bool = False) -> list[tuple[Consent, Topic, TopicText]]:
    """The contact's consents on `channel` in `statuses`, row-locked (the consent rows only), ordered
    by id, each with its topic and text; optionally of one topic, confirmable at `confirm_by_from`,
    and only those whose prompt was handed to the provider since the request (`prompted`).

    What every STOP and YES changes. bench/consent_statements.py: 239 µs CPU per call, the ORM form
    (select_for_update(of=("self",)).select_related("topic", "text")) 991 µs: saves 752 µs, 8.8 %
    of a YES webhook's web CPU (a first sitting: 268 vs 1375 µs).
    """
    params: list = [contact_id, channel, *statuses]
    if topic_id is not None:
        params.append(topic_id)
    if confirm_by_from is not None:
        params.append(Consent._meta.get_field("confirm_by").get_db_prep_value(confirm_by_from, connection))
    # The text depends only on which filters are given: built once each. Built per call, with its dozen
    # quoted names, it was about 5 % of the applier's instructions (bench/apply_instructions.py).
    key = ("consents_locked", connection.vendor, len(statuses), topic_id is not None, confirm_by_from is not None,
           prompted)
    sql = _STATEMENTS.get(key)
    if sql is None:
        sql = _STATEMENTS[key] = _consents_locked_statement(len(statuses), topic=topic_id is not None,
                                                            confirm_by=confirm_by_from is not None, prompted=prompted)
    return fetch(sql, params, (Consent, Topic, TopicText))


def _consents_locked_statement(statuses: int, *, topic: bool, confirm_by: bool, prompted: bool) -> str:
    def c(name):
        return _column(Consent, name, "c")

    where = [f"{c('contact')} = %s", f"{c('channel')} = %s", f"{c('status')} IN ({', '.join(['%s'] * statuses)})"]
    if topic:
        where.append(f"{c('topic')} = %s")
    if confirm_by:
        where.append(f"{c('confirm_by')} >= %s")
    if prompted:
        where.append(f"{c('prompted_at')} IS NOT NULL AND {c('prompted_at')} >= {c('requested_at')}")
    lock = " FOR UPDATE OF c" if connection.features.has_select_for_update_of else ""
    return (f"SELECT {columns(Consent, 'c')}, {columns(Topic, 't')}, {columns(TopicText, 'x')} "
            f"FROM {_table(Consent)} c "
            f"JOIN {_table(Topic)} t ON {_column(Topic, 'id', 't')} = {c('topic')} "
            f"JOIN {_table(TopicText)} x ON {_column(TopicText, 'id', 'x')} = {c('text')} "
            f"WHERE {' AND '.join(where)} ORDER BY {c('id')}{lock}")


# --- inserts: the ledger append and the messages of a webhook ------------------------------------


def _insert_statement(model: type[Model], rows: int = 1) -> tuple[str, tuple]:
    key = ("insert", connection.vendor, model, rows)
    statement = _STATEMENTS.get(key)
    if statement is None:
        meta = model._meta
        fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
        row = f"({', '.join(['%s'] * len(fields))})"
        statement = _STATEMENTS[key] = (
            f"INSERT INTO {_table(model)} ({', '.join(_quoted(f.column) for f in fields)}) "
            f"VALUES {', '.join([row] * rows)} RETURNING {_quoted(meta.pk.column)}",
            fields,
        )
    return statement


def _prepared(instance: Model, fields: tuple) -> list:
    """What `Model.save()` would write: each field's own `pre_save` (auto fields filled in) and `get_db_prep_save`."""
    db = _database()
    return [f.get_db_prep_save(f.pre_save(instance, True), db) for f in fields]


def _saved(instance: Model, pk) -> Model:
    """The saved row `pk` that `instance` became, loaded the documented way (`Model.from_db`), with the
    related objects `instance` had cached. `instance` gets the key too."""
    instance.pk = pk
    fields = instance._meta.concrete_fields
    saved = type(instance).from_db(connection.alias, [f.attname for f in fields], [getattr(instance, f.attname) for f in fields])
    for field in fields:
        if field.is_relation and field.is_cached(instance):
            setattr(saved, field.name, getattr(instance, field.name))
    return saved


def insert_many(instances: Sequence[Model]) -> list[Model]:
    """INSERT new rows of one model in one statement, in order, and return them saved.

    A webhook's messages (the inbound one and its reply). bench/consent_statements.py: 257 µs CPU
    for two messages, `bulk_create` 533 µs: saves 277 µs, 3.3 % of a keyword webhook's web CPU; kept
    with the ledger append below (together 11 % of a webhook: bench/inbound.py fell to 73–94 % of
    its rate with all three through the ORM, three alternating pairs). If any row is refused (a
    unique constraint), none is written. The keys come from one sequence (or rowid) in VALUES order,
    so sorted keys are matched to the rows in order, whatever order RETURNING lists them in.
    """
    sql, fields = _insert_statement(type(instances[0]), len(instances))
    params = [value for instance in instances for value in _prepared(instance, fields)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        keys = sorted(row[0] for row in cursor.fetchall())
    return [_saved(instance, pk) for instance, pk in zip(instances, keys, strict=True)]


def ledger_head_lock(head_model: type[Model]) -> tuple[int, str] | None:
    """(seq, hash) of the chain head, row-locked until the transaction ends (None: no head yet).

    SQLite has no row locks: its IMMEDIATE transactions already let one writer in at a time.
    Part of the ledger append, kept as one unit with `ledger_append`: bench/consent_statements.py
    71 µs CPU vs 382 µs through the ORM (select_for_update().values_list().first()).
    """
    key = ("head_lock", connection.vendor, head_model)
    sql = _STATEMENTS.get(key)
    if sql is None:
        sql = _STATEMENTS[key] = (
            f"SELECT {_column(head_model, 'seq')}, {_column(head_model, 'hash')} FROM {_table(head_model)} "
            f"WHERE {_quoted(head_model._meta.pk.column)} = 1" + (" FOR UPDATE" if connection.features.has_select_for_update else ""))
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()


def ledger_append(event: Model, head_model: type[Model]) -> Model:
    """INSERT the event and move the chain head to it (the head's lock held), and return it saved.

    On PostgreSQL one statement (a data-modifying CTE), one round trip. bench/consent_statements.py:
    234 µs CPU per append, the ORM's two statements (bulk_create, then update()) 575 µs, and 405 µs
    less wall time; with the head lock above, 7.7 % of a keyword webhook's web CPU.
    """
    insert, params = _insert_statement(type(event))[0], _prepared(event, _insert_statement(type(event))[1])
    head, pk = _table(head_model), _quoted(head_model._meta.pk.column)
    move = f"UPDATE {head} SET {_column(head_model, 'seq')} = %s, {_column(head_model, 'hash')} = %s"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"WITH event AS ({insert}) {move} FROM event WHERE {head}.{pk} = 1 RETURNING event.id",
                           [*params, event.seq, event.hash])
            event_pk = cursor.fetchone()[0]
        else:
            cursor.execute(insert, params)
            event_pk = cursor.fetchone()[0]
            cursor.execute(f"{move} WHERE {pk} = 1", [event.seq, event.hash])
    return _saved(event, event_pk)


def ids_reserve(model: type[Model], count: int) -> list[int]:
    """`count` keys of `model` taken from its sequence now (PostgreSQL), for rows inserted later in the
    transaction (`ledger.appends_at_end`); a key taken and never used leaves a gap in ids, never in `seq`.

    Not for speed: the ORM has no way to take keys before the INSERT, which a consent's pointer to its
    confirming event needs when the event is chained in at the end of the transaction.
    """
    sql = "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)"
    with connection.cursor() as cursor:
        cursor.execute(sql, [model._meta.db_table, model._meta.pk.column, count])
        return [row[0] for row in cursor.fetchall()]


# --- the intake of a webhook ------------------------------------------------------------------


def receipt_insert(receipt_model: type[Model], values: dict) -> int | None:
    """INSERT an inbound receipt unless its (channel, provider message id) is there: its id, or None.

    The one write of a webhook's intake (docs/inbound.md), in autocommit. bench/consent_statements.py
    (5 alternating rounds, PostgreSQL, building the record included on both sides): 296 µs CPU per call;
    the ORM's nearest one-statement form, `bulk_create(ignore_conflicts=True)`, which cannot even tell a
    new row from a redelivery, 557 µs: saves 262 µs per webhook.
    """
    key = ("receipt_insert", connection.vendor, receipt_model)
    statement = _STATEMENTS.get(key)
    if statement is None:
        meta = receipt_model._meta
        fields = tuple(meta.get_field(name) for name in values)
        conflict = ", ".join(_column(receipt_model, name) for name in ("channel", "provider_message_id"))
        statement = _STATEMENTS[key] = (
            f"INSERT INTO {_table(receipt_model)} ({', '.join(_quoted(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT ({conflict}) DO NOTHING "
            f"RETURNING {_quoted(meta.pk.column)}",
            fields,
        )
    sql, fields = statement
    db = _database()
    params = [field.get_db_prep_save(values[field.name], db) for field in fields]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None
