"""common.sql.execute_prepared writes the values into the EXECUTE as literals: every value must
come back exactly as given, whatever quotes, percent signs or types it holds."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from psycopg.types.json import Jsonb

from common import sql

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TRICKY_TEXTS = [
    "O'Brien",
    "100% sure",
    "%s and %(name)s",
    "back\\slash",
    "Zoë – 東京 🛍",
    "",
    "'; DROP TABLE orders_order; --",
]


@pytest.mark.parametrize("prepared", [True, False])
def test_values_come_back_as_given(settings, prepared):
    settings.OMNISTOCK = {**settings.OMNISTOCK, "PREPARED_STATEMENTS": prepared}
    statement = sql.Prepared(
        "omnistock_test_roundtrip",
        "SELECT %s::text[], %s::numeric(12, 2), %s::timestamptz, %s::jsonb, %s::boolean, "
        "%s::bigint, %s::text",
    )
    moment = datetime(2026, 11, 23, 4, 30, 15, 123456, tzinfo=UTC)
    document = {"note": "it's 100%", "nested": [1, None, "é"]}

    with connection.cursor() as cursor:
        sql.execute_prepared(
            cursor,
            statement,
            [TRICKY_TEXTS, Decimal("19.90"), moment, Jsonb(document), True, 2**40, None],
        )
        row = cursor.fetchone()

    # (Django has psycopg hand jsonb back as text: JSONField decodes it.)
    assert (*row[:3], json.loads(row[3]), *row[4:]) == (
        TRICKY_TEXTS,
        Decimal("19.90"),
        moment,
        document,
        True,
        2**40,
        None,
    )


def test_a_long_list_of_named_values_is_executed_by_name():
    """Over psycopg's 50 cached parameters: sent as one EXECUTE of literals."""
    names = {f"v{i}": "text" for i in range(80)}
    statement = sql.Prepared(
        "omnistock_test_many", "SELECT " + " || ".join(f"%({n})s" for n in names), names
    )
    values = {name: f"'{index}%" for index, name in enumerate(names)}

    with connection.cursor() as cursor:
        sql.execute_prepared(cursor, statement, values)
        (joined,) = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE name = %s", [statement.name]
        )
        (prepared,) = cursor.fetchone()

    assert joined == "".join(values.values())
    assert prepared == 1


def test_a_session_keeps_at_most_per_session_shapes_of_a_statement_prepared():
    shapes = [
        sql.Prepared(
            "omnistock_test_shape", f"SELECT {' + '.join(['%s::integer'] * n)}", per_session=2
        )
        for n in (1, 2, 3)
    ]

    with connection.cursor() as cursor:
        results = []
        for n, statement in enumerate(shapes, start=1):
            sql.execute_prepared(cursor, statement, list(range(1, n + 1)))
            results.append(cursor.fetchone()[0])
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'omnistock_test_shape_%%'"
        )
        (kept,) = cursor.fetchone()

    assert results == [1, 3, 6]  # the third shape was answered too, sent unprepared
    assert kept == 2


def test_the_name_changes_with_the_parameters_types_not_only_the_text():
    text = "SELECT %(a)s"
    assert (
        sql.Prepared("x", text, {"a": "integer"}).name
        != sql.Prepared("x", text, {"a": "text"}).name
    )
    with pytest.raises(ValueError):
        sql.Prepared("x", "SELECT '100%%'")
