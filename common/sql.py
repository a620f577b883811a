"""Plain-SQL helpers for hot write paths that insert new model instances.

The ORM compiles every INSERT on every call, and on the order placement path compiling cost
more than PostgreSQL spent running the statement. These helpers take the values exactly as the
ORM would write them (each field's `pre_save` and `get_db_prep_save`, so defaults, `auto_now`
and JSON are handled the same way) and leave the statement's shape to the caller.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Model


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
    the instance as `save()` would."""
    return [
        field.get_db_prep_save(field.pre_save(instance, True), connection=connection)
        for field in fields
    ]


def mark_saved(instance: Model, pk: int) -> None:
    """What `save()` leaves on an instance it inserted."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias
