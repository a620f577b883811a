"""The nightly stock rollups: the state of every position at the end of a day, rebuilt from
the ledger (current position minus the movements after that day), counted per location and
for the chain. Safe to run again for the same day (its rows are replaced)."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from analytics.models import CatalogueDay, StockDay
from inventory.models import Sku, StockMovement, StockPosition
from stores.models import LocationKind


def stock_day_take(*, day: date) -> int:
    """Write the StockDay rows and the CatalogueDay of `day`; returns the locations counted."""
    end = datetime.combine(
        day + timedelta(days=1), time.min, tzinfo=zoneinfo.ZoneInfo(settings.REPORTS_TIME_ZONE)
    )
    sellable_since = (
        StockMovement.objects.filter(position=OuterRef("pk"), occurred_at__gte=end)
        .values("position")
        .annotate(units=Sum(F("on_hand_delta") - F("reserved_delta") - F("unsellable_delta")))
        .values("units")
    )
    positions = (
        StockPosition.objects.filter(location__is_active=True)
        .filter(Exists(StockMovement.objects.filter(position=OuterRef("pk"), occurred_at__lt=end)))
        .annotate(
            sellable_then=F("on_hand")
            - F("reserved")
            - F("unsellable")
            - Coalesce(Subquery(sellable_since, output_field=IntegerField()), 0)
        )
    )
    per_location = list(
        positions.values("location").annotate(
            listed=Count("pk"), sellable=Count("pk", filter=Q(sellable_then__gt=0))
        )
    )
    online = positions.filter(sellable_then__gt=F("safety_stock"))
    serves_online = (
        Q(location__kind=LocationKind.WAREHOUSE)
        | Q(location__allows_pickup=True)
        | Q(location__ships_from_location=True)
    )
    with transaction.atomic():
        StockDay.objects.filter(day=day).delete()
        StockDay.objects.bulk_create(
            StockDay(
                day=day,
                location_id=row["location"],
                skus_listed=row["listed"],
                skus_sellable=row["sellable"],
            )
            for row in per_location
        )
        CatalogueDay.objects.update_or_create(
            day=day,
            defaults={
                "skus_active": Sku.objects.filter(is_active=True).count(),
                "sellable_warehouse_only": online.filter(location__kind=LocationKind.WAREHOUSE)
                .values("sku")
                .distinct()
                .count(),
                "sellable_anywhere": online.filter(serves_online).values("sku").distinct().count(),
            },
        )
    return len(per_location)


def stock_days_backfill(*, days: int, until: date | None = None) -> int:
    """The rollups of the `days` days up to `until` (yesterday by default)."""
    zone = zoneinfo.ZoneInfo(settings.REPORTS_TIME_ZONE)
    until = until or timezone.localdate(timezone=zone) - timedelta(days=1)
    for offset in range(days - 1, -1, -1):
        stock_day_take(day=until - timedelta(days=offset))
    return days
