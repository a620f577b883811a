"""Aggregates the ORM does not ship: percentiles of a value per group, with window functions
(PostgreSQL and SQLite alike), so a median is one query however many orders there are."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.db.models import Count, ExpressionWrapper, F, IntegerField, QuerySet, Value, Window
from django.db.models.functions import Ceil, RowNumber

from common.money import Money


def percentiles(
    queryset: QuerySet, *, value: str, group_by: Sequence[str], fractions: Sequence[float]
) -> dict[tuple, dict[float, object]]:
    """{group values: {fraction: value}}: the nearest-rank percentile of `value` (a field or
    annotation of the queryset) in each group — the smallest value with at least that share of
    the group at or below it. Rows whose value is NULL are left out."""
    partition = [F(name) for name in group_by]
    ranked = queryset.filter(**{f"{value}__isnull": False}).annotate(
        rank=Window(RowNumber(), partition_by=partition, order_by=F(value).asc()),
        size=Window(Count("pk"), partition_by=partition),
    )
    found: dict[tuple, dict[float, object]] = {}
    for fraction in fractions:
        # the database keeps the one row per group at rank ceil(fraction × size)
        at_rank = ExpressionWrapper(Ceil(F("size") * Value(fraction)), output_field=IntegerField())
        # .order_by(): no sort by the model's default ordering (1M orders: it spilled to disk)
        for row in ranked.filter(rank=at_rank).values(*group_by, value).order_by():
            key = tuple(row[name] for name in group_by)
            found.setdefault(key, {})[fraction] = row[value]
    return found


def hours(duration: timedelta | None) -> float | None:
    return None if duration is None else round(duration.total_seconds() / 3600, 2)


def share(part: int | float | None, whole: int | float | None) -> float | None:
    """part / whole as a ratio rounded to 4 places (None when there is no whole)."""
    if not whole:
        return None
    return round(float(part or 0) / float(whole), 4)


def amount_text(value, currency: str) -> str:
    """A sum of money as text with its currency's decimals ("30.00", not SQLite's "30")."""
    return str(Money(value or 0, currency).rounded().amount)
