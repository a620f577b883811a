"""Plain-SQL helpers for hot write paths.

The ORM compiles every INSERT on every call, and on the order placement path compiling cost
more than PostgreSQL spent running the statement. `insert_columns`/`insert_values` take the
values exactly as the ORM would write them (each field's `pre_save` and `get_db_prep_save`, so
defaults, `auto_now` and JSON are handled the same way) and leave the statement's shape to the
caller. `Prepared`/`execute_prepared` then spare PostgreSQL planning (and psycopg parsing) the
same long statement on every call.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, ProgrammingError, connection, connections
from django.db.models import (
    AutoField,
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DateField,
    Field,
    ForeignKey,
    IntegerField,
    JSONField,
    Model,
    PositiveBigIntegerField,
    PositiveIntegerField,
    PositiveSmallIntegerField,
    SmallAutoField,
    SmallIntegerField,
    TextField,
)
from psycopg.adapt import Transformer


def insert_columns(model: type[Model], *, skip: tuple[str, ...] = ()) -> list:
    """The concrete fields an INSERT writes: every one but the auto primary key and `skip`
    (attribute names, e.g. foreign keys the statement fills from another row).

    Called at import: a field these helpers would write differently from the ORM (generated
    columns, database defaults) fails there, on every backend, rather than only on the
    PostgreSQL path at run time."""
    fields = [
        field
        for field in model._meta.concrete_fields
        if not field.primary_key and field.attname not in skip
    ]
    for field in fields:
        if getattr(field, "generated", False) or field.has_db_default():
            raise TypeError(
                f"{model.__name__}.{field.name}: generated columns and database defaults are "
                "not supported by common.sql; write this model through the ORM."
            )
    return fields


def typed_placeholders(fields: list) -> str:
    """`%s::<column type>, ...`: typed, so a column that is NULL in every row of a VALUES list
    still has the column's type (an untyped NULL would be text, which PostgreSQL refuses to
    assign to an integer column). Character columns are cast to text, not to `varchar(n)`: an
    explicit cast would cut a value that is too long, where the INSERT must refuse it."""
    return ", ".join(f"%s::{_cast_type(field)}" for field in fields)


def _cast_type(field) -> str:
    db_type = field.db_type(connection)
    if db_type is None:
        raise TypeError(f"{field} has no column type to cast to.")
    if db_type.startswith(("varchar", "char", "character")):
        return "text"
    return db_type


def insert_values(instance: Model, fields: list) -> list:
    """The parameters the ORM would send to insert `instance`: it sets `auto_now_add` fields on
    the instance as `save()` would. A value the field would write unchanged (`_written_as_is`)
    is taken as it is: asking the field costs more than the rest of the row."""
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: `connection` is a proxy
    values = []
    for field in fields:
        value = getattr(instance, field.attname)
        if value is None:
            if not _none_is_null(field):
                value = field.get_db_prep_save(field.pre_save(instance, True), connection=db)
        else:
            written = _written_as_is(field)
            if written is None or type(value) is not written[0]:
                value = field.get_db_prep_save(field.pre_save(instance, True), connection=db)
            elif written[1]:  # an integer, typed for the backend (Int2/Int4/Int8 on PostgreSQL)
                value = db.ops.adapt_integerfield_value(value, written[1])
        values.append(value)
    return values


@functools.cache
def _none_is_null(field) -> bool:
    """Whether `field` writes None as NULL without asking: its `pre_save` returns the
    attribute (no `auto_now`), and it is not JSON (whose None may be JSON's null)."""
    if isinstance(field, JSONField):
        return False
    if isinstance(field, DateField):  # DateTimeField too: their pre_save only acts for auto_now
        return not (field.auto_now or field.auto_now_add)
    return type(field).pre_save is Field.pre_save


@functools.cache
def _written_as_is(field) -> tuple[type, str] | None:
    """(The exact Python type whose values `field` writes without conversion, and for integers
    the internal type the backend adapts them by): its `pre_save` returns the attribute, and its
    `get_db_prep_save` returns a str (character fields) or a bool as it is, and an int (integer
    fields, and foreign keys to them) through `adapt_integerfield_value` only. None: always ask
    the field (dates, decimals, JSON, `auto_now`, anything else), as for a None value (a
    nullable field may have a default)."""
    if type(field).pre_save is not Field.pre_save:
        return None
    if isinstance(field, ForeignKey):
        target = field.target_field
        if type(target) in (AutoField, BigAutoField, SmallAutoField):
            return int, ""  # an automatic key's value is sent as it is
        return (int, target.get_internal_type()) if type(target) in _INTEGER_KEYS else None
    for kind, python_type in _AS_IS:
        if type(field) is kind:
            return python_type, field.get_internal_type() if python_type is int else ""
    return None


_AS_IS = (
    (CharField, str),
    (TextField, str),
    (BooleanField, bool),
    (IntegerField, int),
    (BigIntegerField, int),
    (SmallIntegerField, int),
    (PositiveIntegerField, int),
    (PositiveSmallIntegerField, int),
    (PositiveBigIntegerField, int),
)
_INTEGER_KEYS = (IntegerField, BigIntegerField, SmallIntegerField)


def mark_saved(instance: Model, pk: int) -> None:
    """What `save()` leaves on an instance it inserted."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias


class Prepared:
    """A statement PREPAREd once per database session, then EXECUTEd by name (PostgreSQL).

    With `params` (name → SQL type, in $n order) `sql` uses %(name)s placeholders and is
    executed with a dict; without, it uses %s placeholders, each cast to its type in the SQL
    (`typed_placeholders`), and is executed with a list. The name ends with a digest of the
    statement (text and parameter types), so a server session that kept a statement of an older
    version never runs it. With `per_session`, a session keeps at most that many statements of
    this `name` prepared (the shapes of one statement); others of the family are sent plain."""

    def __init__(
        self,
        name: str,
        sql: str,
        params: dict[str, str] | None = None,
        *,
        per_session: int | None = None,
    ):
        if "%%" in sql:
            raise ValueError("Prepared statements do not support a literal %% in their SQL.")
        self.family = name
        self.sql = sql
        self.params = params
        # Statements of one family (the shapes of one statement) a session keeps prepared: each
        # costs the server about half a megabyte of plan per connection; beyond, sent plain.
        self.per_session = per_session
        if params is None:
            pieces = sql.split("%s")
            types = ""
            body = pieces[0] + "".join(
                f"${index}{piece}" for index, piece in enumerate(pieces[1:], start=1)
            )
            values = ", ".join(["%s"] * (len(pieces) - 1))
        else:
            types = f" ({', '.join(params.values())})"
            body = sql
            for index, param in enumerate(params, start=1):
                body = body.replace(f"%({param})s", f"${index}")
            values = ", ".join(f"CAST(%s AS {kind})" for kind in params.values())
        # The digest covers the parameters' types and order as well as the text.
        digest = hashlib.sha1(f"{types} AS {body}".encode()).hexdigest()[:12]  # noqa: S324
        self.name = f"{name}_{digest}"
        self.prepare_sql = f"PREPARE {self.name}{types} AS {body}"
        self.execute_sql = f"EXECUTE {self.name} ({values})"

    def values(self, params) -> list:
        return list(params) if self.params is None else [params[name] for name in self.params]


class PreparedStatementLost(Exception):
    """This session and the connection disagree on a prepared statement (a DEALLOCATE ALL or
    DISCARD ALL ran, or a pooler moved us onto another server session). The statement failed and
    its transaction is aborted: the caller rolls back to its savepoint and tries again, or takes
    another path; the next call prepares it again."""


def execute_prepared(
    cursor,
    statement: Prepared,
    params,
    *,
    prefix: Callable[[str], str] | None = None,
    prefix_value=None,
) -> None:
    """EXECUTE `statement`, PREPAREd first if this database session has not got it yet; after
    `prefix(placeholder)`, a statement of one parameter (`prefix_value`) sent in the same round
    trip.

    Django's cursors bind parameters on the client, so PostgreSQL plans every execution, and
    the hot paths' one-statement writes cost more to plan than to run (0.34 ms against 0.20 ms
    for a one-line reservation, measured). With OMNISTOCK["PREPARED_STATEMENTS"]
    (DB_PREPARED_STATEMENTS, on by default) each is PREPAREd once per connection (one plan),
    then EXECUTEd: a failed EXECUTE leaves the prepared statement in place, and prepared
    statements outlive rollbacks. Off (behind PgBouncer in transaction mode, which does not track
    SQL PREPARE) the statement is sent plain. Raises PreparedStatementLost (see there).
    """
    if not settings.OMNISTOCK["PREPARED_STATEMENTS"]:
        if prefix is None:
            cursor.execute(statement.sql, params)
        elif statement.params is None:
            cursor.execute(prefix("%s") + statement.sql, [prefix_value, *params])
        else:
            cursor.execute(
                prefix("%(prefix_value)s") + statement.sql, {**params, "prefix_value": prefix_value}
            )
        return
    connection.ensure_connection()
    session = connection.connection  # a new database session is a new object: prepare again
    prepared = getattr(session, "omnistock_prepared", None) or frozenset()
    if statement.name not in prepared and statement.per_session is not None:
        family = f"{statement.family}_"
        if sum(name.startswith(family) for name in prepared) >= statement.per_session:
            cursor.execute(statement.sql, params)  # enough of its shapes are kept already
            return
    if statement.name not in prepared:
        try:
            cursor.execute(statement.prepare_sql)
        except ProgrammingError as error:
            if getattr(error.__cause__, "sqlstate", None) != "42P05":  # already prepared
                raise
            # This server session has it already (a pooler moved us onto it, wrongly
            # configured with prepared statements on): use it from the next call; this one
            # fails, since the failed PREPARE aborted its transaction.
            session.omnistock_prepared = prepared | {statement.name}
            raise PreparedStatementLost() from error
        session.omnistock_prepared = prepared | {statement.name}
    # The values are written into the EXECUTE as literals, quoted by psycopg as client-side
    # binding quotes them: psycopg re-parses (does not cache) a query of over 50 parameters,
    # which for a placement cost more than the rest of its EXECUTE.
    literals = _literals(cursor, [prefix_value, *statement.values(params)])
    text = statement.execute_sql % tuple(literals[1:])
    if prefix is not None:
        text = prefix(literals[0]) + text
    try:
        cursor.execute(text)
    except ProgrammingError as error:
        if getattr(error.__cause__, "sqlstate", None) != "26000":  # invalid statement name
            raise
        session.omnistock_prepared = prepared - {statement.name}  # the next call prepares it
        raise PreparedStatementLost() from error


def _literals(cursor, values: list) -> list[str]:
    transformer = Transformer.from_context(cursor.cursor)  # psycopg's cursor, under Django's
    return ["NULL" if value is None else transformer.as_literal(value).decode() for value in values]
